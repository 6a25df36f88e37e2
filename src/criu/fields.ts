/** Reading decoded protobuf fields (pb.ts gives 64-bit kinds as bigint, 32-bit kinds as number, repeated as arrays). */

/** An integer field as a bigint. */
export const u64 = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number));
/** An integer field as a number. */
export const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : (v as number));
/** A repeated field (absent: empty). */
export const arr = <T>(v: unknown): T[] => (v as T[] | undefined) ?? [];
