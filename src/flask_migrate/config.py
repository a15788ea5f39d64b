"""Alembic's :class:`~alembic.config.Config`, taught where our templates live."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

from alembic.config import Config as AlembicConfig

TEMPLATES_DIR = Path(__file__).parent / "templates"


class Config(AlembicConfig):
    """An Alembic config that can take its templates from another folder.

    :param template_directory: the folder that holds template folders; by
        default, the templates shipped with Flask-Migrate.
    """

    def __init__(
        self, *args: t.Any, template_directory: str | os.PathLike[str] | None = None,
        **kwargs: t.Any,
    ) -> None:
        self.template_directory = template_directory
        super().__init__(*args, **kwargs)

    def get_template_directory(self) -> str:
        """The folder that holds the template folders."""
        if self.template_directory:
            return str(self.template_directory)
        return str(TEMPLATES_DIR)
