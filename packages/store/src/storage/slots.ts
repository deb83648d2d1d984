/**
 * Slots of document keys: a file of fixed-size records overwritten in place (LevelDB never overwrites in place:
 * a deleted record stays in its files until compaction, so a key kept there would outlive the purge that
 * deleted it). Slot i sits at byte i × slotBytes; a slot of zeros is free. The file and memory variants share
 * this interface; sealed.ts decides what a slot holds.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { TesseraError, assert } from '@tessera/core';

/** One slot, in bytes: a used flag and a document key wrapped (nonce, 32 bytes, tag), the rest zeros. */
export const slotBytes = 80;
/**
 * Slots a file may hold: 16 Mi documents (a 1.25 GiB file, read whole at open; the keys of every document are
 * kept in memory, about 150 bytes each). A store of more documents needs keys per group of documents.
 */
export const slotsMax = 1 << 24;

/** Where the slots of document keys live. */
export interface SlotStore {
  readonly description: string;
  /** Opens the store and returns every slot (free ones are zeros). */
  open(): Promise<Buffer[]>;
  /** Overwrites the slots in place; with `sync` they survive power loss once this resolves. */
  write(slots: ReadonlyArray<{ readonly index: number; readonly bytes: Uint8Array }>, sync: boolean): Promise<void>;
  close(): Promise<void>;
}

/** The slot file at `path` (created with mode 0600). */
export function fileSlots(path: string): SlotStore {
  let handle: FileHandle | null = null;
  return {
    description: `key slots ${path}`,
    async open() {
      try {
        await (await open(path, 'wx', 0o600)).close();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(path, error);
      }
      try {
        handle = await open(path, 'r+');
        const bytes = await handle.readFile();
        if (bytes.length % slotBytes !== 0) {
          // A crash while the file grew: the partial slot was never referenced by a committed batch.
          await handle.truncate(bytes.length - (bytes.length % slotBytes));
        }
        const out: Buffer[] = [];
        for (let at = 0; at + slotBytes <= bytes.length; at += slotBytes) out.push(bytes.subarray(at, at + slotBytes));
        return out;
      } catch (error) {
        throw ioError(path, error);
      }
    },
    async write(slots, sync) {
      assert(handle !== null, 'slot file not open');
      try {
        // Neighbouring slots (a batch's new documents usually take them in a row) go down in one write.
        const sorted = [...slots].sort((a, b) => a.index - b.index);
        for (let at = 0; at < sorted.length; ) {
          let end = at + 1;
          while (end < sorted.length && sorted[end]!.index === sorted[end - 1]!.index + 1) end++;
          for (let i = at; i < end; i++)
            assert(sorted[i]!.bytes.length === slotBytes && sorted[i]!.index >= 0 && sorted[i]!.index < slotsMax, 'slot write shape');
          const run = Buffer.concat(sorted.slice(at, end).map((slot) => slot.bytes));
          await handle.write(run, 0, run.length, sorted[at]!.index * slotBytes);
          at = end;
        }
        if (sync) await handle.datasync();
      } catch (error) {
        throw ioError(path, error);
      }
    },
    async close() {
      const current = handle;
      handle = null;
      await current?.close();
    },
  };
}

/** Slots in memory (tests, memory storage): kept across close and open, like memoryStorage. */
export function memorySlots(): SlotStore & { readonly slots: Buffer[] } {
  const slots: Buffer[] = [];
  return {
    description: 'key slots in memory',
    slots,
    async open() {
      return slots.map((slot) => Buffer.from(slot));
    },
    async write(writes) {
      for (const { index, bytes } of writes) {
        while (slots.length <= index) slots.push(Buffer.alloc(slotBytes));
        slots[index] = Buffer.from(bytes);
      }
    },
    async close() {},
  };
}

function ioError(path: string, error: unknown): TesseraError {
  return new TesseraError('ERR_STORE_IO', `key slots ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
}
