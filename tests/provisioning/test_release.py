"""``meshhub-provision release make|sign|verify``, checked as a node would."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from node.identity import Identity, save_identity
from node.trust.registry import Admin, AdminSet, dump_anchors
from provisioning.cli import cli
from tests.provisioning.test_image_support import make_fake_wheel


def setup(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    wheels = tmp_path / "wheels"
    make_fake_wheel(wheels, "1.2.0")
    (wheels / "dep-1.0-py3-none-any.whl").write_bytes(b"dependency")
    keys = []
    admins = []
    for name in ("ana", "bo", "cy"):
        identity = Identity.generate()
        keys.append(save_identity(identity, tmp_path / f"{name}.key"))
        admins.append(Admin(name, identity.public_key))
    anchors = tmp_path / "anchors.json"
    anchors.write_bytes(dump_anchors(AdminSet(tuple(admins), 2)))
    return wheels, keys, anchors


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_make_sign_verify(tmp_path: Path) -> None:
    wheels, keys, anchors = setup(tmp_path)
    out = tmp_path / "release-1.2.0"
    code, text = invoke("release", "make", "--version", "1.2.0", "--channel", "stable",
                        "--rollout-days", "5", "--wheelhouse", str(wheels), "--out", str(out))
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["release"]["version"] == "1.2.0"
    assert manifest["release"]["rollout_days"] == 5
    assert {f["path"] for f in manifest["release"]["files"]} == \
        {"meshhub-1.2.0-py3-none-any.whl", "dep-1.0-py3-none-any.whl"}
    code, text = invoke("release", "verify", str(out), "--anchors", str(anchors))
    assert code != 0 and "only 0 valid signature" in text
    code, text = invoke("release", "sign", str(out), "--key", str(keys[0]), "--anchors",
                        str(anchors))
    assert code == 0 and "1 valid signature(s) of 2 needed" in text, text
    code, text = invoke("release", "verify", str(out), "--anchors", str(anchors))
    assert code != 0 and "only 1" in text
    invoke("release", "sign", str(out), "--key", str(keys[1]))
    code, text = invoke("release", "verify", str(out), "--anchors", str(anchors))
    assert code == 0 and "is valid" in text, text
    code, text = invoke("release", "verify", str(out), "--anchors", str(anchors),
                        "--running", "1.2.0")
    assert code != 0 and "not newer" in text
    (out / "dep-1.0-py3-none-any.whl").write_bytes(b"dependencY")
    code, text = invoke("release", "verify", str(out), "--anchors", str(anchors))
    assert code != 0 and "tampered" in text
    code, text = invoke("release", "sign", str(out), "--key", str(keys[2]))
    assert code != 0 and "tampered" in text, "an admin never signs files that do not match"


def test_make_refuses_a_version_mismatch_and_a_used_folder(tmp_path: Path) -> None:
    wheels, _, _ = setup(tmp_path)
    code, text = invoke("release", "make", "--version", "9.0.0", "--wheelhouse", str(wheels),
                        "--out", str(tmp_path / "r"))
    assert code != 0 and "the meshhub wheel is 1.2.0" in text
    code, text = invoke("release", "make", "--wheelhouse", str(wheels), "--out", str(wheels))
    assert code != 0 and "not empty" in text
