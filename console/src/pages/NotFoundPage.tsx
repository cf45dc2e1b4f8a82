import { Link } from "react-router";

export function NotFoundPage() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        Nothing here. Go to the <Link to="/ui/">workflows</Link> or the <Link to="/ui/runs">runs</Link>.
      </p>
    </>
  );
}
