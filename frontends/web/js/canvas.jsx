// WorkflowCanvas: the react-flow view of a graph Python owns. Props in: nodes, edges,
// operations (the schemas the inspector needs), arrange (a counter: each increment lays the
// graph out again), height. The local copy only makes dragging smooth; coarse events go back,
// each as ONE plain JSON object: onMove({moved: [{id, x, y}], arranged}), onConnect({source,
// sourceHandle, target, targetHandle}), onDelete({nodes, edges}), onEdit(see inspector.jsx).
// A connection is never drawn here: Python decides, and the edge arrives in the next props.
import React, { useCallback, useEffect, useRef, useState } from "react";
import {
  ReactFlow, ReactFlowProvider, Background, Controls, MiniMap,
  applyNodeChanges, applyEdgeChanges, useNodesInitialized, useReactFlow,
} from "@xyflow/react";
import { OpNode } from "./op_node.jsx";
import { Inspector } from "./inspector.jsx";
import { arrange } from "./arrange.js";

const nodeTypes = { op: OpNode };
// fitView never zooms out past minZoom: low enough that a large graph still fits on load.
const MIN_ZOOM = 0.05;

/** Merge Python's nodes into the local ones: keep selection, sizes and a node being dragged. */
function mergeNodes(local, incoming) {
  const old = new Map(local.map((n) => [n.id, n]));
  return (incoming || []).map((p) => {
    const cur = old.get(p.id);
    const placed = p.x != null && p.y != null;
    const position = cur && (cur.dragging || !placed) ? cur.position : { x: placed ? p.x : 0, y: placed ? p.y : 0 };
    return { ...(cur || {}), id: p.id, type: "op", position, data: p };
  });
}

const toEdges = (edges) => (edges || []).map((e) => ({
  id: e.id, source: e.source, target: e.target, sourceHandle: e.sourceHandle, targetHandle: e.targetHandle,
  animated: !!e.animated, className: e.className || "",
}));

function Canvas(props) {
  const { height = 560 } = props;
  const [nodes, setNodes] = useState(() => mergeNodes([], props.nodes));
  const [edges, setEdges] = useState(() => toEdges(props.edges));
  const [selected, setSelected] = useState(null);
  const flow = useReactFlow();
  const initialized = useNodesInitialized();
  const cb = useRef({});
  cb.current = props;  // ReactPy sends fresh callbacks on each render

  const nodesKey = JSON.stringify(props.nodes || []);
  const edgesKey = JSON.stringify(props.edges || []);
  useEffect(() => { setNodes((cur) => mergeNodes(cur, props.nodes)); }, [nodesKey]);
  useEffect(() => { setEdges(toEdges(props.edges)); }, [edgesKey]);

  const layout = useCallback((fit) => {
    const measured = flow.getNodes().map((n) => ({ id: n.id, width: n.measured?.width, height: n.measured?.height }));
    if (!measured.length) return;
    const moved = arrange(measured, flow.getEdges());
    const at = new Map(moved.map((m) => [m.id, m]));
    setNodes((ns) => ns.map((n) => (at.has(n.id) ? { ...n, position: { x: at.get(n.id).x, y: at.get(n.id).y } } : n)));
    cb.current.onMove && cb.current.onMove({ moved, arranged: true });
    if (fit) requestAnimationFrame(() => flow.fitView({ padding: 0.15 }));
  }, [flow]);

  // A graph saved without positions is laid out once its nodes have been measured.
  const unplaced = (props.nodes || []).some((n) => n.x == null || n.y == null);
  useEffect(() => { if (initialized && unplaced) layout(true); }, [initialized, unplaced]);
  const lastArrange = useRef(props.arrange || 0);
  useEffect(() => {
    if ((props.arrange || 0) !== lastArrange.current) { lastArrange.current = props.arrange || 0; layout(true); }
  }, [props.arrange]);
  const count = (props.nodes || []).length;
  useEffect(() => { if (initialized) requestAnimationFrame(() => flow.fitView({ padding: 0.15 })); }, [count, initialized]);

  const onNodesChange = useCallback((ch) => setNodes((ns) => applyNodeChanges(ch, ns)), []);
  const onEdgesChange = useCallback((ch) => setEdges((es) => applyEdgeChanges(ch, es)), []);
  const onConnect = useCallback((c) => {
    cb.current.onConnect && cb.current.onConnect({
      source: c.source, sourceHandle: c.sourceHandle, target: c.target, targetHandle: c.targetHandle });
  }, []);
  const onNodeDragStop = useCallback((_e, _node, dragged) => {
    cb.current.onMove && cb.current.onMove({
      moved: dragged.map((n) => ({ id: n.id, x: Math.round(n.position.x), y: Math.round(n.position.y) })),
      arranged: false });
  }, []);
  const onDelete = useCallback(({ nodes: dn, edges: de }) => {
    cb.current.onDelete && cb.current.onDelete({ nodes: dn.map((n) => n.id), edges: de.map((e) => e.id) });
  }, []);
  const onSelectionChange = useCallback(({ nodes: sel }) => setSelected(sel.length === 1 ? sel[0].id : null), []);
  const onEdit = useCallback((x) => cb.current.onEdit && cb.current.onEdit(x), []);

  const node = (props.nodes || []).find((n) => n.id === selected) || null;
  const operation = node ? (props.operations || {})[node.op] : null;
  return (
    <div className="tl-editor" style={{ height }}>
      <div className="tl-canvas">
        <ReactFlow nodes={nodes} edges={edges} nodeTypes={nodeTypes}
          onNodesChange={onNodesChange} onEdgesChange={onEdgesChange} onConnect={onConnect}
          onNodeDragStop={onNodeDragStop} onDelete={onDelete} onSelectionChange={onSelectionChange}
          colorMode="dark" fitView fitViewOptions={{ padding: 0.15 }} minZoom={MIN_ZOOM}
          proOptions={{ hideAttribution: true }}>
          <Background />
          <Controls />
          <MiniMap pannable zoomable style={{ width: 140, height: 90 }} />
        </ReactFlow>
      </div>
      <Inspector node={node} operation={operation} onEdit={onEdit} />
    </div>
  );
}

export function WorkflowCanvas(props) {
  return <ReactFlowProvider><Canvas {...props} /></ReactFlowProvider>;
}
