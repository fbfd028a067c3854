"""The volunteer guides, run: every command block, in each guide's own order, from a fresh
folder and a fresh registry, through the installed ``meshhub-provision`` in bash.

As tests/test_cli_docs.py keeps docs/cli.md equal to ``--help``, these keep
docs/registry.md, flashing.md, customising.md, images.md and updates.md
runnable: a command that drifts from the code fails here. Substitutions are
listed per guide, each with its reason, and must still match the guide's
text. The ones that recur:

- ``/dev/sdc`` (a real SD card, root) becomes a file with ``--to-file``
  (flash) or the image file itself (customise): the same code paths without
  a device; writing a real loop device is tested in test_flash.py and
  test_bad_input_flash.py (root, CI);
- ``sudo`` runs the command as the test's own user (files need no root);
- a download (the node image, the Raspberry Pi OS base) is a small synthetic
  image of the same layout, made before the guide starts;
- ``release make`` and ``image build`` get a ``--wheelhouse`` with a stand-in
  meshhub wheel: building the real wheelhouse fetches ~40 arm64 wheels from
  PyPI (minutes); building meshhub's own wheel in the project venv is tested
  in test_bad_input_build.py;
- what the guide says other people do (bo makes a key on his laptop, the
  other admins sign) is a shell step next to the block it precedes.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from bench.images import make_base_image, make_image
from provisioning.image.sparse import sparse_copy
from tests.conftest import require_root, require_tool
from tests.provisioning.guide_support import Step, run_script, script_for
from tests.provisioning.test_image_support import make_fake_wheel
from tests.vmsupport import base_folder, base_path, locked

#: What bo does on his own laptop before the registry is created.
BO_MAKES_A_KEY = "meshhub-provision registry admin-key new bo.key >/dev/null\n"
#: "Then threshold admins sign the new state": ana and bo (threshold 2).
ADMINS_SIGN = ("meshhub-provision registry -r registry sign --key ~/meshhub/ana.key\n"
               "meshhub-provision registry -r registry sign --key bo.key\n")

REGISTRY_STEPS = [
    Step("registry init", before=BO_MAKES_A_KEY, why="bo's key, made on his laptop"),
    Step("registry register elm-1", before="export MESHHUB_REGISTRY=registry\n",
         why="'Set MESHHUB_REGISTRY=registry' (prose)"),
    Step("registry export snapshot.json",
         before="meshhub-provision registry sign --key bo.key\n",
         why="'When enough admins have signed': bo is the second of two"),
    Step("--retiring", before=(
        "meshhub-provision registry -r registry admin-key new cy.key\n"  # step 1 (inline)
        "python3 - <<'EOF'\n"  # step 2: replace bo's [[admins]] entry with cy's
        "import re, pathlib\n"
        "path = pathlib.Path('registry/community.toml')\n"
        "cy = pathlib.Path('cy.key.pub').read_text().split()[-1]\n"
        "text = re.sub(r'name = \"bo\"\\npublic_key = \"[0-9a-f]{64}\"',\n"
        "              f'name = \"cy\"\\npublic_key = \"{cy}\"', path.read_text())\n"
        "assert 'name = \"cy\"' in text\n"
        "path.write_text(text)\n"
        "EOF\n"
        "meshhub-provision registry check\n"
        "mv snapshot.json previous-snapshot.json\n"),  # the snapshot nodes hold now
         after="meshhub-provision registry export snapshot.json --against "
               "previous-snapshot.json\n",  # step 4 (inline)
         why="the rotation's prose steps 1, 2 and 4"),
]


def setup_script() -> str:
    """registry.md up to its trust anchors: admin keys, init, anchors.json."""
    script = script_for("registry.md", REGISTRY_STEPS)
    return script[:script.index("anchors anchors.json")] + "anchors anchors.json\n"


@pytest.fixture
def node_image(tmp_path: Path) -> Path:
    """A small Raspberry-Pi-OS-layout node image, downloaded as meshhub-node.img.xz."""
    require_tool("sfdisk", "mkfs.vfat", "mcopy", "mke2fs")
    raw = make_image(tmp_path / "node.img", boot_mib_at=4, boot_mib=16, fat_bits=16)
    packed = tmp_path / "meshhub-node.img.xz"
    packed.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    raw.unlink()
    return packed


def test_registry_guide(tmp_path: Path) -> None:
    out = run_script(script_for("registry.md", REGISTRY_STEPS), tmp_path)
    assert "registered elm-1: mesh address 10.42.0.1" in out
    assert (tmp_path / "snapshot.json").exists() and (tmp_path / "anchors.json").exists()
    assert (tmp_path / "secrets").is_dir() and not list((tmp_path / "registry").rglob("*.key"))


def test_flashing_guide(tmp_path: Path, node_image: Path) -> None:
    steps = [Step("flash meshhub-node.img.xz /dev/sdc",
                  replace=[("/dev/sdc", "sdc.img --to-file")],
                  why="no SD card here: a file target")]
    out = run_script(script_for("flashing.md", steps), tmp_path)
    assert out.count("written") == 2 and "verified" in out
    assert (tmp_path / "sdc.img").read_bytes() == (tmp_path / "rehearsal.img").read_bytes()


def test_customising_guide(tmp_path: Path, node_image: Path) -> None:
    require_tool("mcopy", "ssh-keygen")
    steps = [
        Step("registry register elm-4", after=ADMINS_SIGN,
             why="'Then threshold admins sign the new state'"),
        Step("flash meshhub-node.img.xz /dev/sdc", replace=[("/dev/sdc", "sdc.img --to-file")],
             why="no SD card here: a file target"),
        Step("customise /dev/sdc", replace=[("/dev/sdc", "sdc.img")],
             before="mkdir -p ~/.ssh && ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519\n",
             why="the card is the flashed file; the volunteer's own SSH key"),
        Step("discover --registry registry",
             replace=[("--registry registry", "--registry registry --interface 127.0.0.1 "
                                              "--timeout 1")],
             why="the test must not send mDNS on the host's network: loopback only, no nodes"),
    ]
    out = run_script(setup_script() + script_for("customising.md", steps), tmp_path)
    assert "done: elm-4" in out, out
    assert "another band" not in out  # registry init's default channels fit one radio
    assert (tmp_path / "poster-elm-4.pdf").read_bytes().startswith(b"%PDF")


def test_images_guide(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    require_root()  # the guide's `sudo meshhub-provision image base`: mmdebstrap's root mode
    require_tool("mmdebstrap", "sfdisk", "mkfs.vfat", "mcopy", "mke2fs", "debugfs", "e2fsck",
                 "fsck.fat")
    make_base_image(tmp_path / "raspios-lite.img")
    make_fake_wheel(tmp_path / "wheelhouse", "1.2.0")
    steps = [Step("image build", replace=[("--out meshhub-node.img",
                                           "--out meshhub-node.img --wheelhouse wheelhouse")],
                  why="a stand-in wheelhouse instead of ~40 arm64 wheels from PyPI"),
             Step("image try", replace=[("image try meshhub-node.img --port 8080",
                                         "image try --help")],
                  why="booting takes minutes under TCG, and this image has no node to be; "
                      "image try's control flow is test_image_base.py's (a stand-in QEMU)")]
    # The guide's `image base` runs for real (mmdebstrap from Debian's packages, about
    # 2 minutes on a quiet machine, longer under load): as root only, as the guide says.
    # Its image is the one the VM tests boot (tests/vmsupport.py): one build per run and
    # none while the cache holds it. The lock makes the other side wait for this one.
    folder = base_folder(tmp_path_factory)
    cached = base_path(folder, "amd64")
    with locked(cached):
        if cached.exists():
            steps.append(Step("image base", replace=[(
                "sudo meshhub-provision image base --arch amd64 --out base-amd64.img",
                f"cp --sparse=always {cached} base-amd64.img")],
                why="the same base (same packages, same builder) was built already, by the "
                    "VM tests or an earlier run (tests/vmsupport.py)"))
        out = run_script(script_for("images.md", steps), tmp_path, timeout=1200)
        if not cached.exists():
            partial = cached.with_name(cached.name + ".partial")
            sparse_copy(tmp_path / "base-amd64.img", partial)
            partial.replace(cached)
    assert "built meshhub-node.img: meshhub 1.2.0" in out


def test_updates_guide(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_fake_wheel(wheels, "1.2.0")
    (wheels / "dep-1.0-py3-none-any.whl").write_bytes(b"a dependency")
    steps = [Step("release make", replace=[("--out release-1.2.0",
                                            "--out release-1.2.0 --wheelhouse wheels")],
                  why="stands for 'set version = \"1.2.0\" in pyproject.toml' and the "
                      "wheelhouse build")]
    out = run_script(setup_script() + script_for("updates.md", steps), tmp_path)
    assert "is valid" in out, out
