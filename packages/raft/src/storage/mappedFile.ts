/**
 * Reading a data directory's files by mapping them (private, copy-on-write) instead of copying them
 * into fresh memory. A restart reads a snapshot of 100 MiB and a WAL segment of up to 64 MiB; on a
 * virtual machine, faulting in fresh pages for a copy costs more than checking and decoding the
 * bytes (measured here: 88 MiB read 220–250 ms of CPU, mapped and checksummed 55–60 ms).
 *
 * A mapping stays valid when its file is removed, which is all that happens to a snapshot file once
 * it is in place, and to a WAL segment once compacted. A file truncated below bytes still read
 * through a mapping would crash the process (SIGBUS): snapshot files are never truncated, and a
 * replica's WAL segment only above the end of its last complete save (a torn tail, preallocated
 * zeros), past every entry its replay keeps as a view of the mapping. The shared WAL's replay copies
 * its entries out (its torn-tail rules are its own). Appends write past those bytes, and a private
 * mapping never writes back to the file.
 */
import { statSync } from "node:fs"

/** The bytes of the file at `path` (mapping an empty file is an error, so that one is read as empty). */
export const mapFile = (path: string): Uint8Array =>
  statSync(path).size === 0 ? new Uint8Array(0) : Bun.mmap(path, { shared: false })
