"""``meshhub-provision registry``: the volunteer's and admin's view, through the CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from node.identity import load_identity
from node.trust.registry import (
    RegistryTrust,
    Signature,
    SignedSnapshot,
    SnapshotRejected,
    install_initial,
    load_anchors,
    signing_message,
)


def run(*args: str, registry: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MESHHUB_DEBUG", None)
    if registry is not None:
        env["MESHHUB_REGISTRY"] = str(registry)
    return subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                           *args], capture_output=True, text=True, env=env, check=False)


def ok(*args: str, registry: Path | None = None) -> str:
    result = run(*args, registry=registry)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    """A registry with two admins (threshold 2), in its own git-like repository."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    for name in ("ana", "bo"):
        ok("registry", "admin-key", "new", str(tmp_path / "keys" / f"{name}.key"))
    root = tmp_path / "repo" / "registry"
    ok("registry", "init", str(root), "--name", "Elm Street", "--ssid", "elm-mesh",
       "--country", "DE", "--admin-key", str(tmp_path / "keys" / "ana.key.pub"),
       "--admin-key", str(tmp_path / "keys" / "bo.key"), "--threshold", "2")
    return root


def register(reg: Path, name: str, *extra: str) -> str:
    return ok("registry", "register", name, "--secrets", str(reg.parent.parent / "secrets"),
              *extra, registry=reg)


def snapshot_of(reg: Path) -> dict[str, bytes]:
    return {str(p.relative_to(reg)): p.read_bytes() for p in sorted(reg.rglob("*")) if p.is_file()}


def test_admin_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "ana.key"
    out = ok("registry", "admin-key", "new", str(key))
    assert key.stat().st_mode & 0o777 == 0o600
    assert Path(f"{key}.pub").read_text().strip() == load_identity(key).public_key
    assert "[[admins]]" not in out and "'registry init --admin-key" in out  # no registry yet
    before = key.read_bytes()
    result = run("registry", "admin-key", "new", str(key))
    assert result.returncode == 1 and "already exists" in result.stderr
    assert key.read_bytes() == before


def test_register_allocates_unique_addresses_and_keeps_key_outside(reg: Path) -> None:
    for index in range(5):
        register(reg, f"elm-{index}", "--location", "52.52,13.405", "--owner", "Ana",
                 "--hardware", "Raspberry Pi 4")
    ok("registry", "revoke", "elm-2", registry=reg)
    register(reg, "elm-5")
    nodes = [tomllib.loads(p.read_text()) for p in sorted((reg / "nodes").glob("*.toml"))]
    addresses = [n["mesh_address"] for n in nodes]
    subnets = [ipaddress.IPv4Network(n["client_subnet"]) for n in nodes]
    assert len(set(addresses)) == 6  # revoked elm-2's address is not handed out again
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("10.42.0.0/16")
               for a in addresses)
    assert all(s.prefixlen == 24 and s.subnet_of(ipaddress.IPv4Network("10.64.0.0/10"))
               for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:])
    secrets = reg.parent.parent / "secrets"
    key = secrets / "elm-0.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # the private key is nowhere in the registry
    seed = key.read_text().splitlines()[1]
    assert all(seed.encode() not in data for data in snapshot_of(reg).values())
    elm0 = tomllib.loads((reg / "nodes" / "elm-0.toml").read_text())
    assert elm0["location"] == {"lat": 52.52, "lon": 13.405}
    assert elm0["owner"] == "Ana" and elm0["hardware"] == "Raspberry Pi 4"
    listing = ok("registry", "list", registry=reg)
    assert re.search(r"elm-2\s+revoked", listing)


def test_secrets_inside_the_repository_are_refused(reg: Path) -> None:
    result = run("registry", "register", "elm", registry=reg)  # default ../secrets is in repo
    assert result.returncode == 1 and "private node keys must stay out" in result.stderr
    assert not (reg / "nodes" / "elm.toml").exists()


def test_taken_or_bad_name_leaves_registry_unchanged(reg: Path) -> None:
    register(reg, "elm")
    before = snapshot_of(reg)
    result = run("registry", "register", "elm", "--secrets", str(reg / "x"), registry=reg)
    assert result.returncode == 1
    assert "already taken" in result.stderr and "Traceback" not in result.stderr
    result = run("registry", "register", "Bad_Name", "--secrets", str(reg.parent.parent / "s"),
                 registry=reg)
    assert result.returncode == 1 and "host name" in result.stderr
    assert snapshot_of(reg) == before


def test_check_reports_syntax_error_with_file_and_line(reg: Path) -> None:
    register(reg, "elm")
    bad = reg / "nodes" / "elm.toml"
    bad.write_text(bad.read_text() + "hardware = = 'x'\n")
    lines = len(bad.read_text().splitlines())
    result = run("registry", "check", registry=reg)
    assert result.returncode == 1
    assert f"{bad}:{lines}: syntax error" in result.stderr
    # and nothing may be changed while the registry is broken
    result = run("registry", "register", "oak", "--secrets", str(reg.parent.parent / "s"),
                 registry=reg)
    assert result.returncode == 1 and f"{bad}:{lines}" in result.stderr
    assert not (reg / "nodes" / "oak.toml").exists()


def test_check_reports_duplicates_overlaps_bad_keys_and_ranges(reg: Path) -> None:
    register(reg, "elm")
    register(reg, "oak")
    oak = reg / "nodes" / "oak.toml"
    elm = tomllib.loads((reg / "nodes" / "elm.toml").read_text())
    text = oak.read_text()
    text = re.sub(r'mesh_address = ".*"', f'mesh_address = "{elm["mesh_address"]}"', text)
    text = re.sub(r'client_subnet = ".*"', 'client_subnet = "10.64.0.0/23"', text)
    text = re.sub(r'public_key = ".*"', 'public_key = "ABC"', text)
    oak.write_text(text)
    (reg / "nodes" / "pine.toml").write_text(
        (reg / "nodes" / "elm.toml").read_text().replace('"elm"', '"pine"')
        .replace('mesh_address = "10.42.0.1"', 'mesh_address = "192.168.1.1"'))
    result = run("registry", "check", registry=reg)
    err = result.stderr
    assert result.returncode == 1
    line_of = {key: n for n, line in enumerate(text.splitlines(), 1)
               for key in ("mesh_address", "client_subnet", "public_key")
               if line.startswith(key)}
    assert f"{oak}:{line_of['mesh_address']}: mesh_address: 10.42.0.1 is already used by" in err
    assert f"{oak}:{line_of['public_key']}: public_key: must be an Ed25519 public key" in err
    assert f"{oak}:{line_of['client_subnet']}: client_subnet: expected a /24" in err
    assert "overlaps 10.64.0.0/23" in err or "overlaps 10.64.0.0/24" in err
    assert "pine.toml" in err and "192.168.1.1 is outside mesh_range" in err
    assert "public_key: " in err and "is already used by" in err  # pine copied elm's key


def test_sign_export_and_a_node_accepts(reg: Path, tmp_path: Path) -> None:
    register(reg, "elm")
    keys = tmp_path / "keys"
    out = tmp_path / "snapshot.json"
    ok("registry", "sign", "--key", str(keys / "ana.key"), registry=reg)
    result = run("registry", "export", str(out), registry=reg)
    assert result.returncode == 1 and "only 1 valid signature" in result.stderr
    assert not out.exists()
    assert "2 of 2" in ok("registry", "sign", "--key", str(keys / "bo.key"), registry=reg)
    ok("registry", "export", str(out), registry=reg)
    anchors = tmp_path / "anchors.json"
    ok("registry", "anchors", str(anchors), registry=reg)
    node_dir = tmp_path / "node"
    trust = install_initial(node_dir, load_anchors(anchors), out.read_bytes())
    elm = tomllib.loads((reg / "nodes" / "elm.toml").read_text())
    assert trust.is_trusted(elm["public_key"]) and trust.serial == 1
    # not an admin: refused
    stranger = tmp_path / "stranger.key"
    ok("registry", "admin-key", "new", str(stranger))
    result = run("registry", "sign", "--key", str(stranger), registry=reg)
    assert result.returncode == 1 and "not an admin" in result.stderr
    # a change after signing: export refuses until signed again, serial goes up
    ok("registry", "revoke", "elm", registry=reg)
    result = run("registry", "export", str(out), registry=reg)
    assert result.returncode == 1 and "changed since it was signed" in result.stderr
    assert "old signature(s) dropped" in ok("registry", "sign", "--key", str(keys / "bo.key"),
                                            registry=reg)
    ok("registry", "sign", "--key", str(keys / "ana.key"), registry=reg)
    ok("registry", "export", str(out), "--against", str(node_dir / "snapshot.json"),
       registry=reg)
    assert trust.offer(out.read_bytes())
    assert trust.serial == 2 and not trust.is_trusted(elm["public_key"])


def test_rotation_procedure_from_docs(reg: Path, tmp_path: Path) -> None:
    """docs/registry.md, 'Rotating an admin key': replace bo with cy; old nodes follow."""
    keys = tmp_path / "keys"
    register(reg, "elm")
    v1 = tmp_path / "v1.json"
    for admin in ("ana", "bo"):
        ok("registry", "sign", "--key", str(keys / f"{admin}.key"), registry=reg)
    ok("registry", "export", str(v1), registry=reg)
    old_node = tmp_path / "old-node"
    ok("registry", "anchors", str(tmp_path / "anchors-v1.json"), registry=reg)
    install_initial(old_node, load_anchors(tmp_path / "anchors-v1.json"), v1.read_bytes())
    # 1. cy creates a key; 2. community.toml: replace bo's [[admins]] entry with cy's
    out = ok("registry", "admin-key", "new", str(keys / "cy.key"), registry=reg)
    cy_key = re.search(r'public_key = "([0-9a-f]{64})"', out).group(1)  # type: ignore[union-attr]
    community = reg / "community.toml"
    text = community.read_text()
    text = re.sub(r'name = "bo"\npublic_key = "[0-9a-f]{64}"',
                  f'name = "cy"\npublic_key = "{cy_key}"', text)
    community.write_text(text)
    ok("registry", "check", registry=reg)
    # 3. threshold of the OLD admins sign (bo with --retiring) and of the NEW ones (cy)
    ok("registry", "sign", "--key", str(keys / "ana.key"), registry=reg)
    ok("registry", "sign", "--key", str(keys / "bo.key"), "--retiring", registry=reg)
    ok("registry", "sign", "--key", str(keys / "cy.key"), registry=reg)
    # 4. export, checked against what nodes hold now
    v2 = tmp_path / "v2.json"
    ok("registry", "export", str(v2), "--against", str(v1), registry=reg)
    trust = RegistryTrust(old_node)
    assert trust.offer(v2.read_bytes())
    assert {a.name for a in trust.anchors.admins} == {"ana", "cy"}
    # the removed admin bo can no longer get a snapshot trusted
    register(reg, "oak")
    ok("registry", "sign", "--key", str(keys / "bo.key"), "--retiring", registry=reg)
    result = run("registry", "export", str(tmp_path / "v3.json"), "--against", str(v2),
                 registry=reg)
    assert result.returncode == 1 and "only 0 valid signature" in result.stderr
    forged = json.loads(v2.read_text())
    forged["snapshot"]["serial"] = 3
    bo = load_identity(keys / "bo.key")
    sig = Signature(bo.public_key, bo.sign(signing_message(forged["snapshot"])))
    with pytest.raises(SnapshotRejected, match="only 0 valid signature"):
        trust.offer(SignedSnapshot(forged["snapshot"], (sig,)).dumps())
    # ana and cy carry on
    ok("registry", "sign", "--key", str(keys / "ana.key"), registry=reg)
    ok("registry", "sign", "--key", str(keys / "cy.key"), registry=reg)
    v3 = tmp_path / "v3.json"
    ok("registry", "export", str(v3), "--against", str(v2), registry=reg)
    assert trust.offer(v3.read_bytes()) and trust.serial == 3
