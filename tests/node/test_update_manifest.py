"""Release manifests as a node judges them, and the staged rollout."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from node.identity import Identity
from node.trust.registry import Admin, AdminSet
from node.update import (
    ManifestRejected,
    check_file,
    node_draw,
    parse_manifest,
    rollout_share,
    should_install,
    verify_manifest,
)
from node.update.manifest import MAX_MANIFEST_BYTES, Manifest, file_digest

ADMINS = [Identity.generate() for _ in range(3)]
TRUSTED = AdminSet(tuple(Admin(f"a{i}", k.public_key) for i, k in enumerate(ADMINS)), 2)


def release(tmp_path: Path, version: str = "1.1.0", signers: list[Identity] | None = None,
            **changes: object) -> tuple[Manifest, Path]:
    wheel = tmp_path / f"meshhub-{version}-py3-none-any.whl"
    wheel.write_bytes(b"wheel " + version.encode())
    digest, size = file_digest(wheel)
    body = {"version": version, "date": "2026-11-01", "channel": "stable", "rollout_days": 0,
            "files": [{"path": wheel.name, "sha256": digest, "size": size}], **changes}
    manifest = Manifest(body, ())
    for admin in signers if signers is not None else ADMINS[:2]:
        manifest = manifest.with_signature(admin.public_key, admin.sign(manifest.message()))
    return parse_manifest(manifest.dumps(), "test"), wheel


def test_a_properly_signed_newer_release_is_accepted(tmp_path: Path) -> None:
    manifest, wheel = release(tmp_path)
    assert verify_manifest(manifest, TRUSTED, "test", running="1.0.0") is manifest
    check_file(wheel, manifest.files[0])


def test_too_few_signatures(tmp_path: Path) -> None:
    manifest, _ = release(tmp_path, signers=ADMINS[:1])
    with pytest.raises(ManifestRejected, match="only 1 valid signature"):
        verify_manifest(manifest, TRUSTED, "test", running="1.0.0")


def test_the_same_admin_twice_counts_once(tmp_path: Path) -> None:
    manifest, _ = release(tmp_path, signers=ADMINS[:1])
    doc = json.loads(manifest.dumps())
    doc["signatures"] *= 2
    with pytest.raises(ManifestRejected, match="only 1 valid"):
        verify_manifest(parse_manifest(json.dumps(doc).encode()), TRUSTED, running="1.0.0")


def test_unknown_or_rotated_out_admin_key(tmp_path: Path) -> None:
    stranger = Identity.generate()
    manifest, _ = release(tmp_path, signers=[ADMINS[0], stranger])
    with pytest.raises(ManifestRejected, match="no longer"):
        verify_manifest(manifest, TRUSTED, running="1.0.0")
    rotated = AdminSet((Admin("a0", ADMINS[0].public_key), Admin("a2", ADMINS[2].public_key)), 2)
    good, _ = release(tmp_path, signers=ADMINS[:2])
    with pytest.raises(ManifestRejected, match="only 1 valid"):
        verify_manifest(good, rotated, running="1.0.0")


def test_forged_signature_and_changed_content(tmp_path: Path) -> None:
    manifest, _ = release(tmp_path)
    doc = json.loads(manifest.dumps())
    doc["release"]["rollout_days"] = 30  # changed after signing
    with pytest.raises(ManifestRejected, match="does not verify"):
        verify_manifest(parse_manifest(json.dumps(doc).encode()), TRUSTED, running="1.0.0")


@pytest.mark.parametrize(("version", "running"), [("1.0.0", "1.0.0"), ("0.9.0", "1.0.0"),
                                                  ("1.0.0rc1", "1.0.0"), ("1.10.0", "1.9.9")])
def test_only_newer_versions_pep440(tmp_path: Path, version: str, running: str) -> None:
    manifest, _ = release(tmp_path, version=version)
    if version == "1.10.0":
        verify_manifest(manifest, TRUSTED, running=running)
        return
    with pytest.raises(ManifestRejected, match="not newer"):
        verify_manifest(manifest, TRUSTED, running=running)


def test_tampered_file(tmp_path: Path) -> None:
    manifest, wheel = release(tmp_path)
    wheel.write_bytes(b"wheel 1.1.X")  # same size, different bytes
    with pytest.raises(ManifestRejected, match="tampered"):
        check_file(wheel, manifest.files[0])
    wheel.unlink()
    with pytest.raises(ManifestRejected, match="missing"):
        check_file(wheel, manifest.files[0])


def bad(doc_change: object) -> bytes:
    doc = {"format": "meshhub-release-v1", "signatures": [],
           "release": {"version": "1.1.0", "date": "2026-11-01", "channel": "stable",
                       "rollout_days": 0,
                       "files": [{"path": "a.whl", "sha256": "0" * 64, "size": 1}]}}
    doc_change(doc)  # type: ignore[operator]
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "not a JSON file"),
    (b"\xff\xfe", "not a JSON file"),
    (b"[]", "not a release manifest"),
    (bad(lambda d: d["release"]["files"].append(dict(d["release"]["files"][0]))), "listed twice"),
    (bad(lambda d: d["release"]["files"][0].update(path="../../etc/passwd")), "plain file name"),
    (bad(lambda d: d["release"]["files"][0].update(path="/etc/passwd")), "plain file name"),
    (bad(lambda d: d["release"]["files"][0].update(path="sub/a.whl")), "plain file name"),
    (bad(lambda d: d["release"]["files"][0].update(path="manifest.json")), "listed twice"),
    (bad(lambda d: d["release"].update(version="not a version")), "PEP 440"),
    (bad(lambda d: d["release"].update(extra=1)), "unexpected"),
    (bad(lambda d: d["release"].update(rollout_days=-1)), "rollout_days"),
    (bad(lambda d: d["release"]["files"][0].update(size=2**40)), "size"),
    (bad(lambda d: d.update(more=1)), "unexpected top-level"),
    (b"{" + b" " * MAX_MANIFEST_BYTES + b"}", "more than"),
])
def test_malformed_manifests_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ManifestRejected, match=message):
        parse_manifest(data, "mirror http://10.42.0.2:9180")


def test_rollout_share_rises_linearly() -> None:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert rollout_share("2026-11-01", 10, start - dt.timedelta(days=1)) == 0.0
    assert rollout_share("2026-11-01", 10, start) == 0.0
    assert rollout_share("2026-11-01", 10, start + dt.timedelta(days=5)) == pytest.approx(0.5)
    assert rollout_share("2026-11-01", 10, start + dt.timedelta(days=11)) == 1.0
    assert rollout_share("2026-11-01", 0, start) == 1.0


def test_rollout_decision_is_stable_and_spread() -> None:
    keys = [Identity.generate().public_key for _ in range(400)]
    assert node_draw(keys[0], "1.1.0") == node_draw(keys[0], "1.1.0")
    assert node_draw(keys[0], "1.1.0") != node_draw(keys[0], "1.2.0")
    at_30 = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)  # 3 of 10 days
    share = sum(should_install(k, "1.1.0", "2026-11-01", 10, at_30) for k in keys) / len(keys)
    assert 0.2 < share < 0.4
    later = dt.datetime(2026, 11, 8, tzinfo=dt.UTC)
    early = {k for k in keys if should_install(k, "1.1.0", "2026-11-01", 10, at_30)}
    assert early <= {k for k in keys if should_install(k, "1.1.0", "2026-11-01", 10, later)}
