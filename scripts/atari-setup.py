#!/usr/bin/env python3
"""Fetch ALE 0.12.1's C++ source and ROMs for xrl's `atari` feature.

Downloads the ale-py 0.12.1 source distribution from PyPI (or takes one given with --sdist), checks its SHA-256,
unpacks ALE's source and the ROMs it ships into a cache directory, and checks every ROM's MD5 against the list
ale-py ships. Nothing is written into the repository: ALE is GPL-2.0 and the ROMs are not ours to commit.

    python3 scripts/atari-setup.py            # into $XDG_CACHE_HOME/xrl/ale-0.12.1 (default ~/.cache/xrl/ale-0.12.1)
    XRL_ALE_DIR=/some/dir python3 scripts/atari-setup.py
    python3 scripts/atari-setup.py --sdist ale_py-0.12.1.tar.gz   # offline, from a file you downloaded

Then build with `cargo build --release --features atari`. Standard library only.
"""
import argparse
import hashlib
import html.parser
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request

VERSION = "0.12.1"
SDIST = f"ale_py-{VERSION}.tar.gz"
SDIST_SHA256 = "c503d574c5983e1063b451201ccb779d935919c0f6bf116fb0f4f8aa4c86d249"
INDEX = "https://pypi.org/simple/ale-py/"


def default_dir():
    if os.environ.get("XRL_ALE_DIR"):
        return os.environ["XRL_ALE_DIR"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "xrl", f"ale-{VERSION}")


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v]


def download():
    """The sdist's bytes from PyPI's simple index (PEP 503), as pip finds it."""
    with urllib.request.urlopen(urllib.request.Request(INDEX, headers={"Accept": "text/html"}), timeout=60) as r:
        parser = Links()
        parser.feed(r.read().decode("utf-8", "replace"))
    urls = [u for u in parser.links if u.split("#")[0].endswith("/" + SDIST)]
    if not urls:
        sys.exit(f"error: PyPI's index {INDEX} lists no {SDIST}; download it by hand and pass --sdist FILE")
    url = urllib.request.urljoin(INDEX, urls[0].split("#")[0])
    print(f"downloading {url}")
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=default_dir(), help="where to unpack (default: %(default)s)")
    ap.add_argument("--sdist", help=f"use this {SDIST} instead of downloading it")
    args = ap.parse_args()
    target = os.path.abspath(args.dir)
    marker = os.path.join(target, "setup.json")
    if os.path.exists(target) and not os.path.isdir(target):
        sys.exit(f"error: {target} is not a directory; pass --dir NEW_DIR")
    if os.path.isfile(marker):
        try:
            with open(marker) as f:
                done = json.load(f)
        except ValueError:
            sys.exit(f"error: {marker} is damaged; set up into a new directory with --dir NEW_DIR")
        if isinstance(done, dict) and done.get("sdist_sha256") == SDIST_SHA256 and "roms" in done:
            print(f"ALE {VERSION} is already set up in {target} ({len(done['roms'])} ROMs)")
            return
    if os.path.exists(target) and os.listdir(target):
        sys.exit(f"error: {target} exists and is not an ALE {VERSION} setup from this script; "
                 "move it away or pass --dir DIR")

    if args.sdist:
        if not os.path.isfile(args.sdist):
            sys.exit(f"error: --sdist {args.sdist} is not a file; give the path of {SDIST}")
        with open(args.sdist, "rb") as f:
            data = f.read()
    else:
        try:
            data = download()
        except OSError as e:
            sys.exit(f"error: could not download ale-py {VERSION} from PyPI ({e}); "
                     f"download {SDIST} by hand and pass --sdist FILE")
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"error: {SDIST} has SHA-256 {digest}, expected {SDIST_SHA256}: not the release xrl was checked "
                 "against (a damaged or different file)")

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".ale-{VERSION}.tmp-", dir=parent)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(work, filter="data")
        top = os.path.join(work, f"ale_py-{VERSION}")
        rom_src = os.path.join(top, "src", "ale", "python", "roms")
        with open(os.path.join(rom_src, "md5.json")) as f:
            expected = json.load(f)
        roms_dir = os.path.join(work, "roms")
        os.makedirs(roms_dir)
        roms = {}
        for name, md5 in sorted(expected.items()):
            path = os.path.join(rom_src, name)
            if not os.path.isfile(path):
                sys.exit(f"error: the sdist lacks ROM {name} that its md5.json lists")
            with open(path, "rb") as f:
                got = hashlib.md5(f.read()).hexdigest()
            if got != md5:
                sys.exit(f"error: ROM {name} has MD5 {got}, md5.json says {md5}")
            shutil.move(path, os.path.join(roms_dir, name))
            roms[name] = md5
        with open(os.path.join(roms_dir, "md5.json"), "w") as f:
            json.dump(roms, f, indent=1, sort_keys=True)
        os.rename(top, os.path.join(work, "source"))
        with open(os.path.join(work, "setup.json"), "w") as f:
            json.dump({"ale_version": VERSION, "sdist_sha256": SDIST_SHA256, "roms": roms}, f, indent=1)
        if os.path.isdir(target):
            os.rmdir(target)  # empty (checked above)
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"ALE {VERSION} source and {len(roms)} ROMs (MD5 checked) are in {target}")
    print("next: cargo build --release --features atari")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, tarfile.TarError) as e:  # json's errors are ValueErrors
        where = getattr(e, "filename", None)
        sys.exit(f"error: {e}" + ("" if where else "") + "; fix the path or pass --dir NEW_DIR / --sdist FILE")
