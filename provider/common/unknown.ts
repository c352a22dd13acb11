// During preview the engine passes values it does not know yet as this sentinel string;
// check and diff must let it through instead of judging it.
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export function isUnknown(v: unknown): boolean {
  return v === UNKNOWN;
}
