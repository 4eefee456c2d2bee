"""Run the real CLI entry point (main(), with its error protocol) and capture what it says."""

from __future__ import annotations

from compress.cli.main import main


def run_cli(args, capsys):
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused_before_writing(args, tiny_assets, out, capsys, fragment: str) -> None:
    """``args`` (with ``{ckpt}``/``{calib}`` of the tiny assets) and ``-o out`` fail with exit 5: one error line
    holding ``fragment``, and no ONNX file written."""
    argv = [a.format(ckpt=tiny_assets / "ckpt.pt", calib=tiny_assets / "calib") for a in args]
    code, _, err = run_cli([*argv, "-o", out], capsys)
    assert code == 5, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0]
    assert not (out / "model.onnx").exists()  # failed before writing anything
