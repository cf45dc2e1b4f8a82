/**
 * The form's validator: rjsf's `ValidatorType` over @cfworker/json-schema, which interprets a
 * schema where Ajv (rjsf's own validator) compiles it into a function with `new Function`. So
 * the console's Content-Security-Policy needs no 'unsafe-eval'.
 */
import { dereference, validate, type OutputUnit, type Schema } from "@cfworker/json-schema";
import {
  createErrorHandler,
  getDefaultFormState,
  ROOT_SCHEMA_PREFIX,
  toErrorSchema,
  unwrapErrorHandler,
  validationDataMerge,
  withIdRefPrefix,
  type CustomValidator,
  type ErrorTransformer,
  type RJSFSchema,
  type RJSFValidationError,
  type UiSchema,
  type ValidationData,
  type ValidatorType,
} from "@rjsf/utils";

// 2019-09: a $ref's sibling keywords apply too (under draft 7 they are ignored).
const DRAFT = "2019-09";
// An error of these keywords is a result in itself even when errors of the schemas inside
// follow it; an error of any other keyword that is followed by errors from inside it ("a
// subschema had errors", "property x does not match schema") only says where they are.
const OWN_RESULT = new Set(["anyOf", "oneOf"]);
// The library's words for a value a `false` schema refuses (an additional property, say).
const REFUSED = "False boolean schema.";
const REQUIRED = /required property "(.*)"\.$/;

type FormData = unknown;
type Lookup = Record<string, Schema | boolean>;

// The root schema's parts by URI, made once per root schema: rjsf asks whether data fits a
// part of it (an anyOf option, an if) many times per render, with the same root object.
const rootLookups = new WeakMap<RJSFSchema, Lookup>();

/** A copy the library may mark up (it adds properties to the schema objects it reads). */
function copy(schema: RJSFSchema): Schema {
  return structuredClone(schema) as Schema;
}

/** The instance location "#/a/0/b~1c" as rjsf's property path ".a.0.b/c". */
function propertyPath(instanceLocation: string): string {
  return instanceLocation
    .replace(/^#/, "")
    .split("/")
    .slice(1)
    .map((part) => "." + decodeURIComponent(part).replace(/~1/g, "/").replace(/~0/g, "~"))
    .join("");
}

/** Whether `inner` is an error found inside the schema or the value `outer` is about. An
 * additional property's schema checks it at the keyword's own location, and a `false` schema's
 * error has the value's location as its keyword location. */
function isInside(inner: OutputUnit, outer: OutputUnit): boolean {
  if (inner.keywordLocation.startsWith(outer.keywordLocation + "/")) return true;
  return (
    inner.instanceLocation.startsWith(outer.instanceLocation + "/") &&
    (inner.keywordLocation === outer.keywordLocation || inner.keyword === "false")
  );
}

/** The errors to leave out around an `anyOf` or `oneOf` the value matched no option of. When
 * the value has the type of one option only (an optional model that is filled in: an object,
 * not null), that option's errors say what is wrong; "matches no option" and the other
 * options' errors are noise. Where its type fits several options or none, all stay. */
function beside(units: OutputUnit[]): Set<OutputUnit> {
  const dropped = new Set<OutputUnit>();
  units.forEach((unit, index) => {
    if (!OWN_RESULT.has(unit.keyword)) return;
    const prefix = unit.keywordLocation + "/";
    const byOption = new Map<string, OutputUnit[]>();
    for (const inner of units.slice(index + 1)) {
      if (!inner.keywordLocation.startsWith(prefix)) break;
      const option = inner.keywordLocation.slice(prefix.length).split("/")[0];
      byOption.set(option, [...(byOption.get(option) ?? []), inner]);
    }
    const wrongType = (inner: OutputUnit) =>
      inner.keyword === "type" && inner.instanceLocation === unit.instanceLocation;
    const fitting = [...byOption.values()].filter((option) => !option.some(wrongType));
    if (fitting.length !== 1) return;
    dropped.add(unit);
    for (const option of byOption.values()) {
      if (option !== fitting[0]) option.forEach((inner) => dropped.add(inner));
    }
  });
  return dropped;
}

/** The errors to show: those that are results, not signposts to the errors inside them. */
function results(units: OutputUnit[]): OutputUnit[] {
  const seen = new Set<string>();
  const noise = beside(units);
  return units.filter((unit, index) => {
    if (noise.has(unit)) return false;
    const next = units[index + 1];
    if (!OWN_RESULT.has(unit.keyword) && next !== undefined && isInside(next, unit)) {
      return false;
    }
    const key = `${unit.instanceLocation} ${unit.error}`; // the same error from two branches
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One error as rjsf shows it; a missing property's error goes on that property's field. */
function toRjsfError(unit: OutputUnit): RJSFValidationError {
  let property = propertyPath(unit.instanceLocation);
  let message = unit.error === REFUSED ? "is not allowed" : unit.error.replace(/\.$/, "");
  const missing = unit.keyword === "required" ? REQUIRED.exec(unit.error) : null;
  if (missing) {
    property = `${property}.${missing[1]}`;
    message = "is a required property";
  }
  return {
    name: unit.keyword,
    property,
    message,
    stack: `${property} ${message}`.trim(),
    schemaPath: unit.keywordLocation,
  };
}

/** rjsf's validator interface over @cfworker/json-schema (see the module's docstring). */
export class FormValidator implements ValidatorType<FormData> {
  rawValidation<Result = OutputUnit>(
    schema: RJSFSchema,
    formData?: FormData,
  ): { errors?: Result[]; validationError?: Error } {
    try {
      const whole = copy(schema);
      const outcome = validate(formData, whole, DRAFT, dereference(whole), false);
      return { errors: outcome.valid ? undefined : (outcome.errors as Result[]) };
    } catch (caught) {
      // A schema the library cannot use (an unresolved $ref, say): said, not thrown.
      return { validationError: caught instanceof Error ? caught : new Error(String(caught)) };
    }
  }

  validateFormData(
    formData: FormData | undefined,
    schema: RJSFSchema,
    customValidate?: CustomValidator<FormData>,
    transformErrors?: ErrorTransformer<FormData>,
    uiSchema?: UiSchema<FormData>,
  ): ValidationData<FormData> {
    const { errors: units = [], validationError } = this.rawValidation<OutputUnit>(
      schema,
      formData,
    );
    let errors = results(units).map(toRjsfError);
    if (validationError) {
      const message = validationError.message;
      errors.push({ property: "", message, stack: message });
    }
    if (transformErrors) {
      errors = transformErrors(errors, uiSchema);
    }
    const errorSchema = toErrorSchema<FormData>(errors);
    if (!customValidate) {
      return { errors, errorSchema };
    }
    const filled = getDefaultFormState<FormData>(this, schema, formData, schema, true);
    const handler = createErrorHandler<FormData>(filled);
    const added = unwrapErrorHandler<FormData>(
      customValidate(filled, handler, uiSchema, errorSchema),
    );
    return validationDataMerge<FormData>({ errors, errorSchema }, added);
  }

  isValid(schema: RJSFSchema, formData: FormData | undefined, rootSchema: RJSFSchema): boolean {
    try {
      // The part's "#/..." references point into the root schema, registered under rjsf's name.
      let root = rootLookups.get(rootSchema);
      if (root === undefined) {
        root = dereference({ ...copy(rootSchema), $id: ROOT_SCHEMA_PREFIX });
        rootLookups.set(rootSchema, root);
      }
      const part = copy(withIdRefPrefix(schema));
      // the part's own URIs go into a layer over the root's, which stays as it is
      const lookup = dereference(part, Object.create(root) as Lookup);
      return validate(formData, part, DRAFT, lookup, true).valid;
    } catch {
      return false;
    }
  }
}

export const formValidator = new FormValidator();
