import type { ErrorSchema } from "@rjsf/utils";
import type { RequestErrorItem, ValidationErrorItem } from "./types";

const REQUIRED = /^'(.+)' is a required property$/;

/** The server's 422 items (jsonschema's, from /formdata-to-params) as an rjsf ErrorSchema, so
 * each message shows on its field. A missing required property is shown on that property. */
export function toErrorSchema(items: ValidationErrorItem[]): ErrorSchema {
  const root: Record<string, unknown> = {};
  for (const item of items) {
    const path = [...(item.path ?? [])].map(String);
    const missing = item.validator === "required" ? REQUIRED.exec(item.message) : null;
    if (missing) path.push(missing[1]);
    let node = root;
    for (const part of path) {
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    const errors = (node.__errors ??= []) as string[];
    errors.push(missing ? "is a required property" : item.message);
  }
  return root as ErrorSchema;
}

/** Whether a 422 body holds jsonschema items (``path``) rather than request items (``loc``). */
export function isSchemaItems(detail: unknown): detail is ValidationErrorItem[] {
  return Array.isArray(detail) && detail.every((item) => item && Array.isArray(item.path));
}

export function isRequestItems(detail: unknown): detail is RequestErrorItem[] {
  return Array.isArray(detail) && detail.every((item) => item && Array.isArray(item.loc));
}
