"""Loading definitions: files in, a validated Project out."""

from kflow.load.discover import find_project_file, load_project

__all__ = ["find_project_file", "load_project"]
