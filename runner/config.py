"""User-facing run configuration, with azureml-core v1 names (pydantic, validated at the boundary).

Attribute assignment is validated too, so the seed's
``run_config.environment.python.user_managed_dependencies = True`` works and a typo'd type fails
right there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tracking.errors import ConfigurationError

_MODEL_CONFIG = ConfigDict(validate_assignment=True, extra="forbid", arbitrary_types_allowed=True)


class PythonSection(BaseModel):
    """``environment.python``: which interpreter and packages the script gets."""

    model_config = _MODEL_CONFIG
    user_managed_dependencies: bool = False
    interpreter_path: str | None = None
    pip_requirements: list[str] = Field(default_factory=list)


class DockerSection(BaseModel):
    """``environment.docker``: the base image for container targets."""

    model_config = _MODEL_CONFIG
    enabled: bool = False
    base_image: str | None = None
    shm_size: str | None = None


class Environment(BaseModel):
    """A named Python environment (azureml.core.Environment).

    Example::

        env = Environment.from_pip_requirements("sk", "requirements.txt")
        env.environment_variables["OMP_NUM_THREADS"] = "1"
    """

    model_config = _MODEL_CONFIG
    name: str = "default"
    version: str | None = None
    python: PythonSection = Field(default_factory=PythonSection)
    docker: DockerSection = Field(default_factory=DockerSection)
    environment_variables: dict[str, str] = Field(default_factory=dict)

    def __init__(self, name: str = "default", **data: Any):
        super().__init__(name=name, **data)

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str, pip_version: str | None = None) -> "Environment":
        """An environment whose packages come from a requirements file (read now)."""
        try:
            lines = Path(file_path).read_text().splitlines()
        except OSError as exc:
            raise ConfigurationError(f"cannot read requirements file {file_path!r}: {exc}") from None
        reqs = [ln.split("#", 1)[0].strip() for ln in lines]
        return cls(name, python=PythonSection(pip_requirements=[r for r in reqs if r]))

    @classmethod
    def from_docker_image(cls, name: str, image: str, container_registry: Any = None,
                          conda_specification: str | None = None,
                          pip_requirements: str | None = None) -> "Environment":
        env = cls.from_pip_requirements(name, pip_requirements) if pip_requirements else cls(name)
        env.docker = DockerSection(enabled=True, base_image=image)
        return env

    def requirements_text(self) -> str:
        return "\n".join(self.python.pip_requirements)

    def spec(self) -> dict[str, Any]:
        """The JSON form recorded on the run and read by the launcher."""
        return self.model_dump()


class RunConfiguration(BaseModel):
    """How a script runs (azureml.core.runconfig.RunConfiguration)."""

    model_config = _MODEL_CONFIG
    script: str | None = None
    command: str | list[str] | None = None
    arguments: list[Any] = Field(default_factory=list)
    target: Any = "local"
    environment: Environment = Field(default_factory=Environment)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    max_run_duration_seconds: int | None = None
    node_count: int = 1

    def save(self, path: str | None = None, name: str | None = None, separate_environment_yaml: bool = False) -> str:
        """Write this configuration as JSON (``path`` may be a folder or a file)."""
        target = Path(path or ".")
        if target.is_dir() or not target.suffix:
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{name or 'runconfig'}.json"
        data = self.model_dump(mode="json")
        if not isinstance(self.target, str):
            data["target"] = getattr(self.target, "name", "local")
        target.write_text(json.dumps(data, indent=2))
        return str(target)

    @classmethod
    def load(cls, path: str, name: str | None = None) -> "RunConfiguration":
        target = Path(path)
        if target.is_dir():
            target = target / f"{name or 'runconfig'}.json"
        try:
            return cls.model_validate(json.loads(target.read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load run configuration {target}: {exc}") from None


def convert_arguments(arguments: list[Any] | None) -> list[str]:
    """Azure converts arguments with str(); objects that would print as garbage are refused."""
    out = []
    for i, arg in enumerate(arguments or []):
        if isinstance(arg, bool) or isinstance(arg, (str, int, float, os.PathLike)):
            out.append(os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg))
        else:
            raise ConfigurationError(
                f"argument {i} ({arg!r}) is a {type(arg).__name__}; pass strings or numbers "
                "(serialise objects to a file in the source folder and pass its path)")
    return out


class ScriptRunConfig(BaseModel):
    """What to run and where (azureml.core.ScriptRunConfig).

    Example::

        src = ScriptRunConfig(source_directory=".", script="train.py", arguments=["--lr", 0.1],
                              compute_target="local")
        run = experiment.submit(src)

    Raises:
        ConfigurationError: the folder or script does not exist, arguments cannot be passed,
            or both/neither of ``script`` and ``command`` are given.
    """

    model_config = _MODEL_CONFIG
    source_directory: str
    script: str | None = None
    arguments: list[str] = Field(default_factory=list)
    run_config: RunConfiguration = Field(default_factory=RunConfiguration)
    compute_target: Any = None
    environment: Environment | None = None
    command: str | list[str] | None = None
    max_run_duration_seconds: int = 2592000

    def __init__(self, source_directory: str = ".", script: str | None = None,
                 arguments: list[Any] | None = None, run_config: RunConfiguration | None = None,
                 _telemetry_values: Any = None, compute_target: Any = None,
                 environment: Environment | None = None, distributed_job_config: Any = None,
                 resume_from: Any = None, max_run_duration_seconds: int = 2592000,
                 command: str | list[str] | None = None, docker_runtime_config: Any = None):
        try:
            super().__init__(source_directory=os.fspath(source_directory), script=script,
                             arguments=convert_arguments(arguments),
                             run_config=run_config or RunConfiguration(),
                             compute_target=compute_target, environment=environment,
                             command=command, max_run_duration_seconds=max_run_duration_seconds)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid ScriptRunConfig: {exc}") from None

    @field_validator("max_run_duration_seconds")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("max_run_duration_seconds must be > 0")
        return value

    def validate_for_submit(self) -> None:
        folder = Path(self.source_directory)
        if not folder.is_dir():
            raise ConfigurationError(f"source_directory {self.source_directory!r} is not a folder")
        script = self.script or self.run_config.script
        command = self.command or self.run_config.command
        if not script and not command:
            raise ConfigurationError("give script='train.py' (or command=[...]) to ScriptRunConfig")
        if script and not (folder / script).is_file():
            raise ConfigurationError(
                f"script {script!r} not found in source_directory {str(folder.resolve())!r}")

    @property
    def effective_environment(self) -> Environment:
        return self.environment or self.run_config.environment

    @property
    def effective_target(self) -> Any:
        return self.compute_target if self.compute_target is not None else self.run_config.target
