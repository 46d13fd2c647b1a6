"""samconfig.toml read once (stack.read_samconfig): one stack-name rule for the emulator, the deploy
tools and the report, the parameter overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import LOCAL_ENV, SettingsError, deployable_environments, read_samconfig

ROOT = Path(__file__).resolve().parents[2]


def samconfig(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text("version = 0.1\n" + text, encoding="utf-8")
    return path


def test_the_deploy_sections_stack_name_wins_over_the_global_one(tmp_path):
    """sam CLI's precedence: [env.deploy.parameters] over [env.global.parameters], region too."""
    path = samconfig(
        tmp_path,
        '[prod.global.parameters]\nstack_name = "from-global"\nregion = "us-east-1"\n'
        '[prod.deploy.parameters]\nstack_name = "from-deploy"\nregion = "eu-west-1"\n',
    )
    config = read_samconfig(path, "prod")
    assert (config.stack_name, config.region) == ("from-deploy", "eu-west-1")


def test_the_global_stack_name_is_the_fallback(tmp_path):
    """No stack_name in the deploy section: the global one; no region anywhere: None."""
    path = samconfig(
        tmp_path,
        '[uat.global.parameters]\nstack_name = "hs-uat"\n[uat.deploy.parameters]\nresolve_s3 = true\n',
    )
    config = read_samconfig(path, "uat")
    assert (config.stack_name, config.region, dict(config.parameter_overrides)) == ("hs-uat", None, {})


def test_no_stack_name_anywhere_is_an_error_not_a_guess(tmp_path):
    """sam deploy has no stack without a name, so neither does the reader: one line saying where."""
    path = samconfig(tmp_path, "[uat.deploy.parameters]\nresolve_s3 = true\n")
    with pytest.raises(
        SettingsError, match=r"no stack_name for environment 'uat' \(\[uat.deploy.parameters\]\)"
    ):
        read_samconfig(path, "uat")


def test_an_unknown_environment_lists_the_known_ones():
    """An environment samconfig does not have: the error names the ones it has."""
    with pytest.raises(SettingsError, match=r"no environment \[nowhere\] \(it has: .*local"):
        read_samconfig(ROOT / "samconfig.toml", "nowhere")


def test_the_projects_environments_name_their_stacks():
    """Every environment of the project's samconfig.toml, the local stack's included."""
    path = ROOT / "samconfig.toml"
    names = {env: read_samconfig(path, env).stack_name for env in ("dev", "uat", "prod", LOCAL_ENV)}
    assert names == {env: f"hate-speech-{env}" for env in names}
    assert dict(read_samconfig(path, "prod").parameter_overrides) == {"Environment": "prod"}
    assert deployable_environments(path) == ("dev", "prod", "uat")


def test_overrides_are_a_list_or_one_string_with_quotes_stripped(tmp_path):
    """parameter_overrides as sam accepts them: a list of Key=Value, or one space-separated string."""
    listed = samconfig(
        tmp_path, '[a.deploy.parameters]\nstack_name = "a"\nparameter_overrides = ["X=1", "Y=\\"two\\""]\n'
    )
    assert dict(read_samconfig(listed, "a").parameter_overrides) == {"X": "1", "Y": "two"}
    spaced = samconfig(
        tmp_path, '[a.deploy.parameters]\nstack_name = "a"\nparameter_overrides = "X=1 Y=\'2\'"\n'
    )
    assert dict(read_samconfig(spaced, "a").parameter_overrides) == {"X": "1", "Y": "2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[a.deploy.parameters]\nstack_name = "a"\nparameter_overrides = ["X"]\n', "'X' is not Key=Value"),
        ("[a.deploy.parameters\n", "not valid TOML"),
    ],
)
def test_a_bad_samconfig_is_a_settings_error_naming_the_file(tmp_path, text, message):
    """An override without '=' or TOML that does not parse: one SettingsError with the path."""
    path = samconfig(tmp_path, text)
    with pytest.raises(SettingsError, match=message) as raised:
        read_samconfig(path, "a")
    assert str(path) in str(raised.value)


def test_a_missing_samconfig_is_a_settings_error(tmp_path):
    """No file: SettingsError, not OSError."""
    with pytest.raises(SettingsError, match="cannot read samconfig"):
        read_samconfig(tmp_path / "missing.toml", "a")
