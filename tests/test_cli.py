import subprocess
import sys

import pytest

from smallgiant.cli import main


@pytest.mark.parametrize("argv", [[], ["pipeline"], ["pipeline", "cc"], ["demo"]])
def test_help_on_every_level(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    assert "usage: smallgiant" in capsys.readouterr().out


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert main(["pipeline", "cc", "--input", str(tmp_path / "*.wet.gz"), "--output", str(tmp_path / "o")]) == 2
    assert "no file matches" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["pipeline", "cc", "--input", "x", "--output", "o", "--minhash-threshold", "1.5"])
    assert exc.value.code == 2 and "--minhash-threshold" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "smallgiant.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "smallgiant" in out.stdout
