#!/usr/bin/env python3
"""Validates manifests against hostdevd-manifest.schema.json.

Usage: validate-schema.py FILE...  (YAML or JSON). Prints one line per file;
exit 1 if any file fails. Used by the test suite; also handy in a GitOps
pipeline that has Python but not hostdevctl."""
import json
import os
import sys

import jsonschema
import yaml

schema_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostdevd-manifest.schema.json")
with open(schema_path) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema)
failed = False
for path in sys.argv[1:]:
    with open(path) as f:
        document = yaml.safe_load(f)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        failed = True
        for error in errors:
            where = "/".join(str(p) for p in error.path) or "(root)"
            print(f"{path}: {where}: {error.message}")
    else:
        print(f"{path}: valid")
sys.exit(1 if failed else 0)
