"""Settings: where toolforge keeps its data and which model / backend it uses.

Precedence, highest first: explicit arguments (CLI flags), environment variables
(``TOOLFORGE_*``), the config file ``$TOOLFORGE_HOME/config.yaml``, built-in defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolforge.errors import ConfigError

ENV_PREFIX = "TOOLFORGE_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home: Path = Field(default_factory=lambda: Path("~/.toolforge").expanduser())
    model: str | None = Field(
        None, description="litellm model string; unset = embedded local model"
    )
    api_base: str | None = None
    api_key: str | None = None
    backend: str = Field("docker", description="sandbox backend: docker | local")
    base_image_source: str = Field(
        "debootstrap",
        description="debootstrap (offline) | official (pull python/node/debian images)",
    )
    debian_mirror: str | None = Field(
        None, description="default: the mirror in the machine's apt sources"
    )
    debian_suite: str = "bookworm"
    pool_size: int = Field(2, ge=0, description="warm containers kept per tool")
    pool_idle_ttl_s: float = Field(300.0, gt=0)
    local_model_port: int = 8765
    embedding_model: str | None = Field(
        None, description="litellm embedding model for hybrid memory search; unset = full-text only"
    )

    @property
    def tools_dir(self) -> Path:
        return self.home / "tools"

    @property
    def db_path(self) -> Path:
        return self.home / "toolforge.db"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.tools_dir, self.cache_dir, self.run_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)


_ENV_KEYS = {
    "MODEL": "model",
    "API_BASE": "api_base",
    "API_KEY": "api_key",
    "BACKEND": "backend",
    "BASE_IMAGE_SOURCE": "base_image_source",
    "DEBIAN_MIRROR": "debian_mirror",
    "POOL_SIZE": "pool_size",
    "POOL_IDLE_TTL_S": "pool_idle_ttl_s",
    "LOCAL_MODEL_PORT": "local_model_port",
    "EMBEDDING_MODEL": "embedding_model",
}


def default_home() -> Path:
    return Path(os.environ.get(ENV_PREFIX + "HOME") or "~/.toolforge").expanduser()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from defaults, the config file, the environment and ``overrides``."""
    home = Path(overrides.pop("home", None) or default_home()).expanduser()
    values: dict[str, Any] = {}
    config_file = home / "config.yaml"
    if config_file.is_file():
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"Cannot read {config_file}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file} must hold a mapping of settings")
        values.update(loaded)
    for env_key, field in _ENV_KEYS.items():
        if (value := os.environ.get(ENV_PREFIX + env_key)) not in (None, ""):
            values[field] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["home"] = home
    try:
        return Settings(**values)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(
            f"Invalid settings ({problems})",
            hint=f"Check {config_file} and the TOOLFORGE_* environment variables.",
        ) from e
