import { useEffect } from "react";

/** The browser tab's title for the page shown: "<what> · wtrunner". */
export function useTitle(what: string): void {
  useEffect(() => {
    document.title = what ? `${what} · wtrunner` : "wtrunner";
  }, [what]);
}
