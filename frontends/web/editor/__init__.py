"""The workflow editor: a ReactPy component around a bundled react-flow canvas.

Python owns the graph (the daemon's format, see `daemon/runs/graph.py`); the browser keeps a local
copy for smooth dragging and reports coarse edits. `component.WorkflowEditor` is the public
entry.
"""
