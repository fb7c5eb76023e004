"""The ``lightning-siamese`` registry: one module per subcommand, a parser built from the list alone, and
how the command treats unknown arguments, usage errors and a tool's own input errors; the one safe
``torch.load`` that checkpoints and galleries share."""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import lightning_siamese.cli.tools as tools_package
from lightning_siamese.cli.main import main
from lightning_siamese.cli.tool import Tool, UsageError
from lightning_siamese.cli.tools import TOOLS
from lightning_siamese.inference.checkpoints import check_checkpoint_file
from lightning_siamese.inference.files import load_torch_file
from lightning_siamese.inference.gallery import Gallery
from tests.test_commands import SUBCOMMANDS

TOOL_MODULES = sorted(m.name for m in pkgutil.iter_modules(tools_package.__path__))


def test_every_tool_module_is_registered_once_under_its_own_name() -> None:
    assert sorted(SUBCOMMANDS) == TOOL_MODULES
    assert [tool.name for tool in TOOLS] == list(SUBCOMMANDS)  # the order of `lightning-siamese --help`
    for name in TOOL_MODULES:
        tool = importlib.import_module(f"lightning_siamese.cli.tools.{name}").TOOL
        assert isinstance(tool, Tool) and tool.name == name and tool in TOOLS
        assert tool.help and tool.description and tool.help != tool.description
    assert {t.name for t in TOOLS if t.passes_unknown} == {"view2", "sweep"}


def test_tools_import_no_other_tool_nor_the_command() -> None:
    """What import-linter's independence contract enforces, read from the source: a tool imports the
    Tool declaration and lower layers, never another tool, the registry or ``cli.main``."""
    forbidden = {"lightning_siamese.cli.main", "lightning_siamese.cli.tools"}
    for name in TOOL_MODULES:
        path = Path(tools_package.__path__[0]) / f"{name}.py"
        imported = {node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
        imported |= {
            a.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import) for a in node.names
        }
        bad = {m for m in imported if m in forbidden or m.startswith("lightning_siamese.cli.tools.")}
        assert not bad, f"cli/tools/{name}.py imports {bad}"


def test_the_help_lists_every_subcommand_with_its_help(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps the help lines (hyphenated words too)
    assert exit_info.value.code == 0
    for tool in TOOLS:
        assert "".join(f"{tool.name} {tool.help}".split()) in text
    for tool in TOOLS:
        with pytest.raises(SystemExit):
            main([tool.name, "--help"])
        assert " ".join(tool.description.split()[:8]) in " ".join(capsys.readouterr().out.split())


def _tool(name: str, run: Callable[[argparse.Namespace], object], **kwargs: Any) -> Tool:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=3)

    return Tool(name, f"{name} help", f"{name} description", add_arguments, run, **kwargs)


def test_dispatch_unknown_arguments_usage_errors_and_input_errors(capsys: pytest.CaptureFixture) -> None:
    seen: dict[str, argparse.Namespace] = {}

    def record(args: argparse.Namespace) -> None:
        seen[args.tool.name] = args

    def refuse(args: argparse.Namespace) -> None:
        raise UsageError("refuse needs --size above 3")

    def broken(args: argparse.Namespace) -> None:
        raise KeyError("no such run")

    tools = (
        _tool("plain", record),
        _tool("passing", record, passes_unknown=True),
        _tool("refuse", refuse),
        _tool("broken", broken, user_errors=(KeyError,)),
    )
    main(["plain", "--size", "5"], tools)
    assert seen["plain"].size == 5 and not hasattr(seen["plain"], "lightning_args")
    main(["passing", "--trainer.max_epochs", "2"], tools)
    assert seen["passing"].size == 3 and seen["passing"].lightning_args == ["--trainer.max_epochs", "2"]

    with pytest.raises(SystemExit) as exit_info:
        main(["plain", "--trainer.max_epochs", "2"], tools)
    assert exit_info.value.code == 2 and "unrecognized arguments: --trainer.max_epochs 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["refuse"], tools)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "usage: lightning-siamese refuse" in err
    assert "lightning-siamese refuse: error: refuse needs --size above 3" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["broken"], tools)
    assert exit_info.value.code == 2 and capsys.readouterr().err == "lightning-siamese broken: error: 'no such run'\n"
    with pytest.raises(KeyError):  # not declared: a bug, with its traceback
        main(["broken"], (_tool("broken", broken),))


def test_one_safe_load_names_the_file_for_checkpoints_and_galleries(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, good)
    assert torch.equal(
        load_torch_file(good, "thing", ": missing", "is broken", "a thing")["state_dict"]["w"], torch.ones(2)
    )
    assert check_checkpoint_file(good)["state_dict"]["w"].shape == (2,)  # returns what it loaded

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(FileNotFoundError, match=r"^thing .*absent.pt: missing$"):
        load_torch_file(tmp_path / "absent.pt", "thing", ": missing", "is broken", "a thing")
    with pytest.raises(ValueError, match=r"(?s)^thing .*garbage.bin is broken \(\w+: .*\); expected a thing$"):
        load_torch_file(garbage, "thing", ": missing", "is broken", "a thing")

    # The two callers, each with its own words.
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*absent.ckpt: no such checkpoint file"):
        check_checkpoint_file(tmp_path / "absent.ckpt")
    with pytest.raises(
        ValueError,
        match=r"(?s)--ckpt_path .*garbage.bin is not a readable Lightning checkpoint \(.*\); "
        r"expected a .ckpt file written by `lightning fit`",
    ):
        check_checkpoint_file(garbage)
    with pytest.raises(
        FileNotFoundError, match=r"gallery .*absent.pt does not exist: create it with lightning-siamese enroll"
    ):
        Gallery.load(tmp_path / "absent.pt")
    with pytest.raises(
        ValueError,
        match=r"(?s)gallery .*garbage.bin is corrupt or truncated \(.*\); "
        r"expected a file written by lightning-siamese enroll",
    ):
        Gallery.load(garbage)
    torch.save({"weights": 1}, good)
    with pytest.raises(ValueError, match=r"good.pt holds no model state_dict"):
        check_checkpoint_file(good)
