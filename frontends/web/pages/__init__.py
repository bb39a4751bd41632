"""The UI's pages, one module each (routes in `frontends/web/shell.py`)."""
