/** A JSON value pretty-printed, with every object and array collapsible (<details>, so it
 * works with the keyboard). Levels below `openDepth` start open. */
export function JsonTree({ value, openDepth = 3 }: { value: unknown; openDepth?: number }) {
  return (
    <div className="json-tree" data-testid="json-tree">
      <JsonNode value={value} depth={0} openDepth={openDepth} last />
    </div>
  );
}

interface NodeProps {
  name?: string;
  value: unknown;
  depth: number;
  openDepth: number;
  last: boolean;
}

function JsonNode({ name, value, depth, openDepth, last }: NodeProps) {
  const key = name !== undefined ? <span className="json-key">{JSON.stringify(name)}: </span> : null;
  const comma = last ? "" : ",";
  if (value === null || typeof value !== "object") {
    return (
      <div className="json-line">
        {key}
        <span className={`json-${value === null ? "null" : typeof value}`}>
          {JSON.stringify(value)}
        </span>
        {comma}
      </div>
    );
  }
  const array = Array.isArray(value);
  const entries: [string | undefined, unknown][] = array
    ? value.map((item) => [undefined, item])
    : Object.entries(value as Record<string, unknown>);
  const [open, close] = array ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) {
    return (
      <div className="json-line">
        {key}
        {open}
        {close}
        {comma}
      </div>
    );
  }
  return (
    <details className="json-node" open={depth < openDepth}>
      <summary>
        {key}
        {open}
        <span className="json-count">
          {" "}
          {entries.length} {array ? "items" : "keys"} {close}
          {comma}
        </span>
      </summary>
      <div className="json-children">
        {entries.map(([childName, child], index) => (
          <JsonNode
            key={childName ?? index}
            name={childName}
            value={child}
            depth={depth + 1}
            openDepth={openDepth}
            last={index === entries.length - 1}
          />
        ))}
      </div>
      <div className="json-line">
        {close}
        {comma}
      </div>
    </details>
  );
}
