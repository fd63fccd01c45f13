"""manifest.yml against Slack's own manifest schema, and the choices the schema cannot check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
SPEC = SHARED / "specs" / "slack-manifest"
# The top-level manifest.schema.json only dispatches on _metadata.major_version through remote
# $refs; the versioned schema is the one to validate against offline.
SCHEMA = SPEC / "schemas" / "manifest.schema.1.0.0.json"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_json(SCHEMA)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def test_the_schema_tells_slacks_own_samples_apart(schema: dict[str, Any]) -> None:
    # As the schema's own tests do: a strict schema passes the valid sample, fails the invalid one.
    jsonschema.validate(load_json(SPEC / "tests/manifests/v1/manifest.valid.json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load_json(SPEC / "tests/manifests/v1/manifest.invalid.json"), schema)


def test_manifest_is_valid(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.validate(manifest, schema)
    # The schema writes the colour rule as "regex", which JSON Schema ignores; apply it here.
    display = schema["definitions"]["app-manifests.v1.display_information.schema"]
    colour = display["properties"]["background_color"]["regex"]
    assert re.fullmatch(colour, manifest["display_information"]["background_color"])


def test_amazon_command(manifest: dict[str, Any]) -> None:
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/amazon"
    assert command["url"].endswith("/slack/events")
    assert command["usage_hint"] == (
        "[help | list | setup | settings NAME | stop NAME | activate NAME | refresh NAME"
        " | sync NAME [YYYY-MM] | status NAME | logs NAME]"
    )


def test_socket_mode_home_tab_and_interactivity(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    # Bolt serves events, commands and interactivity on one path.
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert urls == {"https://example.com/slack/events"}


def test_only_the_scopes_the_features_need(manifest: dict[str, Any]) -> None:
    assert manifest["oauth_config"]["scopes"] == {"bot": ["commands", "chat:write", "users:read"]}
