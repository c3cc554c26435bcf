#!/usr/bin/env python3
"""fetch-debs.py SUITE DIR PACKAGE...: downloads PACKAGEs (amd64 or all) of a
Debian suite (e.g. bookworm-backports) into DIR, trusting nothing it has not
checked: the suite's InRelease is verified with gpgv against Debian's archive
keyring, Packages.xz against the hash InRelease gives, each .deb against the
hash Packages gives. Prints "PACKAGE VERSION PATH DEPENDS" a line each.

Used by Tests/vm/run for a QEMU newer than bookworm's (igb, the emulated
SR-IOV NIC, came in QEMU 8.0), without adding the suite to apt's sources."""
import hashlib
import lzma
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def get(url):
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    suite, out, packages = sys.argv[1], sys.argv[2], sys.argv[3:]
    inrelease = get(f"{MIRROR}/dists/{suite}/InRelease")
    with tempfile.TemporaryDirectory() as tmp:
        signed = os.path.join(tmp, "InRelease")
        with open(signed, "wb") as f:
            f.write(inrelease)
        plain = os.path.join(tmp, "Release")
        check = subprocess.run(["gpgv", "--keyring", KEYRING, "--output", plain, signed], capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"fetch-debs: {suite}/InRelease: bad signature: {check.stderr.strip()}")
        release = open(plain).read()
    index = "main/binary-amd64/Packages.xz"
    sha = re.search(r"^ ([0-9a-f]{64}) +\d+ " + re.escape(index) + "$", release.split("SHA256:", 1)[1], re.M)
    if not sha:
        sys.exit(f"fetch-debs: no SHA256 for {index} in {suite}/InRelease")
    packed = get(f"{MIRROR}/dists/{suite}/{index}")
    if hashlib.sha256(packed).hexdigest() != sha.group(1):
        sys.exit(f"fetch-debs: {suite}/{index} does not match the hash InRelease gives")
    stanzas = {}
    for stanza in lzma.decompress(packed).decode().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.M))
        if fields.get("Package") in packages and fields.get("Architecture") in ("amd64", "all"):
            stanzas[fields["Package"]] = fields
    os.makedirs(out, exist_ok=True)
    for name in packages:
        fields = stanzas.get(name)
        if not fields:
            sys.exit(f"fetch-debs: no package {name} in {suite}")
        path = os.path.join(out, os.path.basename(fields["Filename"]))
        if not (os.path.exists(path) and hashlib.sha256(open(path, "rb").read()).hexdigest() == fields["SHA256"]):
            data = get(f"{MIRROR}/{fields['Filename']}")
            if hashlib.sha256(data).hexdigest() != fields["SHA256"]:
                sys.exit(f"fetch-debs: {fields['Filename']} does not match the hash Packages gives")
            with open(path + ".new", "wb") as f:
                f.write(data)
            os.rename(path + ".new", path)
        depends = ",".join(d.strip().split(" ")[0] for d in fields.get("Depends", "").split(",") if d.strip())
        print(name, fields["Version"], path, depends or "-")


if __name__ == "__main__":
    main()
