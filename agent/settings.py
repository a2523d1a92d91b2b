"""One typed settings object for every command: defaults < TOML file < MEDAGENT_* env < CLI flags.

The TOML file is ``--config FILE``, else ``$MEDAGENT_CONFIG``, else
``<user config dir>/medagent/config.toml`` when it exists. Nothing deeper in the code reads
the environment: commands build a ``Settings`` and pass what they need down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def default_store_url() -> str:
    return "sqlite:///" + str(Path(user_data_dir("medagent")) / "store.sqlite")


def default_config_file() -> Path:
    return Path(user_config_dir("medagent")) / "config.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDAGENT_", extra="ignore")

    store: str = Field(default_factory=default_store_url,
                       description="SQLAlchemy URL of the embedded FHIR store (sqlite:///path or postgresql+psycopg://...)")
    fhir_url: str | None = Field(None, description="Base URL of a FHIR R4 REST server; when set it is used instead of the store")
    fhir_token: SecretStr | None = Field(None, description="Bearer token for the FHIR server")
    fhir_timeout: float = Field(30.0, description="Seconds per FHIR HTTP request")
    fhir_retries: int = Field(3, description="Retries (with backoff) for a FHIR server that is down or busy")
    validation: Literal["full", "basic"] = Field("full", description="Bundle validation on load: full (R4 models) or basic (structure)")
    read_only: bool = Field(True, description="Refuse every write to the record (draft orders can still be built)")
    llm: str = Field("embedded", description="The planner model: embedded, openai:MODEL@URL, hf:/path or scripted:FILE")
    llm_timeout: float = Field(120.0, description="Seconds per model call to a served model")
    llm_max_new_tokens: int = Field(256, description="Most tokens one planner turn may generate")
    thinking: bool = Field(False, description="MedGemma thinking mode (27B, 1.5-4B): think silently before answering")
    constrained: bool = Field(True, description="Constrain planner output to the tool-call JSON schema where the backend can")
    examples: Literal["auto", "on", "off"] = Field(
        "auto", description="Worked examples in the planner prompt: auto = only for base models (the embedded one)")
    guidelines: str = Field("starter", description="Guideline search for ask and chat: starter (the shipped corpus), an index folder, or off")
    image_encoder: str | None = Field(None, description="Local MedSigLIP folder (SiglipModel + tokenizer); image tools are off without it")
    image_index: str | None = Field(None, description="Image index folder (default <user data dir>/medagent/image-index)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def _config_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.exists():
            raise FileNotFoundError(f"config file {explicit} does not exist")
        return explicit
    env = os.environ.get("MEDAGENT_CONFIG")
    if env:
        return Path(env)
    default = default_config_file()
    return default if default.exists() else None


def load_settings(config: Path | None = None, **flags: Any) -> Settings:
    """Settings with CLI flags on top; flags left as None do not override anything."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    toml_file = _config_file(config)
    if toml_file is None:
        return Settings(**overrides)
    # A subclass carrying the file in its config: no module-level state to reset.
    configured = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": toml_file}})
    return configured(**overrides)
