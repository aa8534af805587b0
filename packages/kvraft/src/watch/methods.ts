/** The watch calls of a client (kvraft's and shardkv's alike), over a stream of watch items. */
import { type Context, Stream } from "effect"
import type { WatchEvent } from "./history.ts"
import type { WatchTarget } from "./kvWatch.ts"
import { type WatchError, type WatchItem, type WatchOptions, withoutProgress } from "./watchStream.ts"

export interface WatchMethods {
  /**
   * The changes of a key (or of every key under `{ prefix }`) in revision order, with no gap and no
   * repeat, resuming by itself after any failure; ends only with `Compacted` (the servers no longer
   * keep the events it needs) or `WatchRefused` (see docs/client.md "Watch"). With
   * `{ progress: true }`, progress notifications come in the stream too.
   */
  watch(
    target: WatchTarget,
    options?: WatchOptions & { readonly progress?: false },
  ): Stream.Stream<WatchEvent, WatchError>
  watch(target: WatchTarget, options: WatchOptions & { readonly progress: true }): Stream.Stream<WatchItem, WatchError>
  /** `watch` as an async iterator (`for await`); an end with `Compacted` is thrown. */
  watchIterable(target: WatchTarget, options?: WatchOptions & { readonly progress?: false }): AsyncIterable<WatchEvent>
  watchIterable(target: WatchTarget, options: WatchOptions & { readonly progress: true }): AsyncIterable<WatchItem>
}

/** `watch` and `watchIterable` over `items` (every event and progress notification of a watch). */
export const watchMethods = (
  items: (target: WatchTarget, options: WatchOptions) => Stream.Stream<WatchItem, WatchError>,
  services: Context.Context<never>,
): WatchMethods => {
  const watch = (target: WatchTarget, options: WatchOptions = {}): Stream.Stream<WatchItem, WatchError> =>
    options.progress === true ? items(target, options) : withoutProgress(items(target, options))
  return {
    watch: watch as WatchMethods["watch"],
    watchIterable: ((target: WatchTarget, options?: WatchOptions) =>
      Stream.toAsyncIterableWith(watch(target, options), services)) as WatchMethods["watchIterable"],
  }
}
