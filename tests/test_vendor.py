"""Vendored browser libraries (api/vendor.py): the committed files match their manifest,
the check finds every kind of drift, and fetching verifies what the registry sends.

The registry is an outside system: `fetch` is given one made here (an httpx
MockTransport answering like the npm registry), never the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from api import vendor

REGISTRY = "https://registry.test"


# -- what is committed ----------------------------------------------------------------------


def test_the_committed_files_match_the_manifest() -> None:
    assert vendor.check() == []


def test_every_vendored_package_has_its_licence_and_provenance() -> None:
    manifest = vendor.read_manifest()
    assert {p.name for p in manifest.packages} >= {"react", "react-dom", "graphiql"}
    for package in manifest.packages:
        paths = {file.path for file in package.files}
        assert package.license, package.name
        assert "package.json" in paths, package.name
        assert set(package.license_files) <= paths, package.name
        assert package.tarball.endswith(".tgz"), package.name
        assert package.integrity.startswith("sha512-"), package.name
        published = json.loads((vendor.VENDOR_DIR / package.directory / "package.json").read_text())
        assert (published["name"], published["version"]) == (package.name, package.version)
        assert published["license"] == package.license


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


# -- fetching from a registry ------------------------------------------------------------------


def tarball(files: dict[str, bytes]) -> bytes:
    """An npm tarball: gzipped tar with everything under `package/`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def registry(
    name: str, version: str, files: dict[str, bytes], *, integrity: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """An npm registry holding one package version."""
    body = tarball(files)
    escaped = name.replace("/", "%2F")
    tgz = f"{REGISTRY}/{name}/-/{name.rpartition('/')[2]}-{version}.tgz"
    metadata = {
        "name": name,
        "version": version,
        "license": "MIT",
        "dist": {"tarball": tgz, "integrity": integrity or sri(body)},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if str(request.url) in (f"{REGISTRY}/{escaped}/{version}", f"{REGISTRY}/{name}/{version}"):
            return httpx.Response(200, json=metadata)
        if str(request.url) == tgz:
            return httpx.Response(200, content=body)
        return httpx.Response(404, json={"error": "Not found"})

    return answer


FILES = {
    "package.json": b'{"name": "@scope/lib", "version": "1.2.3", "license": "MIT"}',
    "LICENSE.md": b"MIT License\n",
    "dist/lib.umd.js": b"window.Lib = {};\n",
    "dist/other.js": b"not wanted\n",
}


def declare(directory: Path, files: list[str]) -> None:
    directory.mkdir(exist_ok=True)
    listed = ", ".join(json.dumps(f) for f in files)
    (directory / vendor.DECLARATION).write_text(
        f'[[package]]\nname = "@scope/lib"\nversion = "1.2.3"\nfiles = [{listed}]\n'
    )


def test_fetch_writes_the_declared_files_licences_and_manifest(tmp_path: Path) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"])
    (directory / "old@0.1.0").mkdir()
    (directory / "old@0.1.0" / "gone.js").write_text("")
    answer = registry("@scope/lib", "1.2.3", FILES)
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        manifest = vendor.fetch(directory, registry=REGISTRY, client=client)
    [package] = manifest.packages
    assert package.license_files == ["LICENSE.md"]
    assert [f.path for f in package.files] == ["LICENSE.md", "dist/lib.umd.js", "package.json"]
    assert package.integrity == sri(tarball(FILES))
    written = directory / "@scope" / "lib@1.2.3" / "dist" / "lib.umd.js"
    assert written.read_bytes() == FILES["dist/lib.umd.js"]
    assert not (directory / "old@0.1.0").exists()
    assert not (directory / "@scope" / "lib@1.2.3" / "dist" / "other.js").exists()
    assert vendor.read_manifest(directory) == manifest
    assert vendor.check(directory) == []


def test_fetch_refuses_a_tarball_that_does_not_match_its_integrity(tmp_path: Path) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"])
    answer = registry("@scope/lib", "1.2.3", FILES, integrity=sri(b"something else"))
    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as client,
        pytest.raises(vendor.VendorError, match="does not match its integrity"),
    ):
        vendor.fetch(directory, registry=REGISTRY, client=client)
    assert sorted(p.name for p in directory.iterdir()) == [vendor.DECLARATION]


def test_fetch_names_a_file_the_package_does_not_have(tmp_path: Path) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/missing.js"])
    answer = registry("@scope/lib", "1.2.3", FILES)
    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as client,
        pytest.raises(vendor.VendorError, match=r"@scope/lib@1\.2\.3 has no file dist/missing\.js"),
    ):
        vendor.fetch(directory, registry=REGISTRY, client=client)


def test_fetch_names_a_version_the_registry_does_not_have(tmp_path: Path) -> None:
    directory = tmp_path / "vendor"
    declare(directory, ["dist/lib.umd.js"])
    answer = registry("@scope/lib", "9.9.9", FILES)
    with (
        httpx.Client(transport=httpx.MockTransport(answer)) as client,
        pytest.raises(vendor.VendorError, match="is not on the registry"),
    ):
        vendor.fetch(directory, registry=REGISTRY, client=client)
