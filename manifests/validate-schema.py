#!/usr/bin/env python3
"""Validates manifests against hostdevd-manifest.schema.json, or hostdevctl's
JSON output against its schema in schemas/.

Usage: validate-schema.py FILE...  (manifests, YAML or JSON)
       validate-schema.py --output KIND FILE...  (KIND: plan, apply, check,
       validate, status, devices, describe; - is standard input; apply's
       output is JSON Lines: every line is checked)
Prints one line per file ("FILE: valid", or one line per error); exit 1 if
any file fails. Used by the test suite; also handy in a GitOps pipeline that
has Python but not hostdevctl.

The YAML is read the way hostdevctl reads it, so that both give the same
verdict: the YAML 1.2 core schema (PyYAML's default is YAML 1.1, where `yes`
is a boolean and an unquoted 0000:01:00.0 a sexagesimal number), UTF-8 only,
one document, no tags beyond the core schema's, no duplicate keys, at most
4 MiB. What JSON Schema cannot express (a VM or device named by two bindings)
only hostdevctl validate reports."""
import json
import os
import re
import sys

import jsonschema
import yaml

MAXIMUM_BYTES = 4 << 20
CORE = "tag:yaml.org,2002:"


class CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's implicit types
    and only the core schema's tags."""

    yaml_implicit_resolvers = {}
    yaml_constructors = {}


def _resolver(tag, pattern, first):
    CoreLoader.add_implicit_resolver(CORE + tag, re.compile(pattern, re.X), list(first))


_resolver("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])
_resolver("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_resolver(
    "float",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+.0123456789",
)


def _int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0x"):
        return int(text[2:], 16)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 10)


def _float(loader, node):
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _bool(loader, node):
    text = loader.construct_scalar(node)
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    raise yaml.constructor.ConstructorError(None, None, f"'{text}' is not a boolean", node.start_mark)


def _mapping(loader, node):
    result = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _unknown(loader, node):
    raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag!r} is not allowed", node.start_mark)


CoreLoader.add_constructor(CORE + "null", lambda loader, node: None)
CoreLoader.add_constructor(CORE + "bool", _bool)
CoreLoader.add_constructor(CORE + "int", _int)
CoreLoader.add_constructor(CORE + "float", _float)
CoreLoader.add_constructor(CORE + "str", yaml.SafeLoader.construct_yaml_str)
CoreLoader.add_constructor(CORE + "seq", lambda loader, node: loader.construct_sequence(node, deep=True))
CoreLoader.add_constructor(CORE + "map", _mapping)
CoreLoader.add_constructor(None, _unknown)


def load(path):
    """The one document of `path`, or raises ValueError saying why it is not one."""
    with open(path, "rb") as f:
        data = f.read(MAXIMUM_BYTES + 1)
    if len(data) > MAXIMUM_BYTES:
        raise ValueError(f"larger than {MAXIMUM_BYTES} bytes")
    text = data.decode("utf-8")  # strict: UnicodeDecodeError is a ValueError
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return yaml.load(text, Loader=CoreLoader)  # "expected a single document" for two
    except RecursionError:
        raise ValueError("nested too deeply")
    except yaml.YAMLError as error:
        raise ValueError(str(error).replace("\n", " "))


def output_validator(kind):
    """The validator of one output's schema, with the shared definitions
    (schemas/common.schema.json) resolvable by their $id."""
    directory = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
    store = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".schema.json"):
            with open(os.path.join(directory, name)) as f:
                loaded = json.load(f)
            store[loaded["$id"]] = loaded
    schema = store.get("urn:hostdevd:schema:" + kind)
    if schema is None or kind == "common":
        known = sorted(key.rsplit(":", 1)[1] for key in store if not key.endswith(":common"))
        sys.exit(f"validate-schema.py: no output schema '{kind}'; known: {', '.join(known)}")
    jsonschema.Draft202012Validator.check_schema(schema)
    # RefResolver: what Debian 12's python3-jsonschema (4.10) offers; newer ones still accept it.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver.from_schema(schema, store=store)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def output_documents(path, lines):
    """The JSON documents of one output file: the whole file, or each line."""
    with (sys.stdin if path == "-" else open(path)) as f:
        text = f.read()
    if not lines:
        return [("", json.loads(text))]
    documents = [(f"line {n}: ", json.loads(line)) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not documents:
        raise ValueError("no JSON lines")
    return documents


def report(path, prefix, validator, document):
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        where = "/".join(str(p) for p in error.path) or "(root)"
        print(f"{path}: {prefix}{where}: {error.message}")
    return not errors


if len(sys.argv) > 2 and sys.argv[1] == "--output":
    kind = sys.argv[2]
    validator = output_validator(kind)
    failed = False
    for path in sys.argv[3:]:
        try:
            documents = output_documents(path, lines=kind == "apply")
        except (OSError, ValueError) as error:
            failed = True
            print(f"{path}: (not JSON) {error}")
            continue
        ok = all([report(path, prefix, validator, document) for prefix, document in documents])
        failed = failed or not ok
        if ok:
            print(f"{path}: valid")
    sys.exit(1 if failed else 0)

schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostdevd-manifest.schema.json")
with open(schema_path) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema)
failed = False
for path in sys.argv[1:]:
    try:
        document = load(path)
    except (OSError, ValueError) as error:
        failed = True
        print(f"{path}: (not a manifest) {error}")
        continue
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    if errors:
        failed = True
        for error in errors:
            where = "/".join(str(p) for p in error.path) or "(root)"
            print(f"{path}: {where}: {error.message}")
    else:
        print(f"{path}: valid")
sys.exit(1 if failed else 0)
