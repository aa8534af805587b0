import { Schema } from "effect"

/**
 * A request/response method: its name on the wire and the Schemas that validate what arrives.
 * Values are sent as they are (msgpack), so schemas here describe plain data whose encoded form
 * is the value itself.
 */
export interface Method<Req, Res> {
  readonly name: string
  readonly request: Schema.Decoder<Req>
  readonly response: Schema.Decoder<Res>
  /** @internal cached validators */
  readonly decodeRequest: (input: unknown) => Req | undefined
  /** @internal */
  readonly decodeResponse: (input: unknown) => Res | undefined
}

/**
 * A hand-written check for the shapes a method carries on its hot path: the value exactly as the
 * Schema decodes it (a fresh object of the schema's fields), or undefined to let the Schema
 * decide. It must never accept what the Schema refuses; it may pass on anything.
 */
export type FastDecoder<A> = (input: unknown) => A | undefined

export interface FastDecoders<Req, Res> {
  readonly request?: FastDecoder<Req>
  readonly response?: FastDecoder<Res>
}

const optionDecoder = <A>(
  schema: Schema.Decoder<A>,
  fast: FastDecoder<A> | undefined,
): ((input: unknown) => A | undefined) => {
  const decode = Schema.decodeUnknownExit(schema)
  const bySchema = (input: unknown): A | undefined => {
    const exit = decode(input)
    return exit._tag === "Success" ? exit.value : undefined
  }
  if (fast === undefined) return bySchema
  return (input) => fast(input) ?? bySchema(input)
}

export const defineMethod = <Req, Res>(
  name: string,
  request: Schema.Decoder<Req>,
  response: Schema.Decoder<Res>,
  fast: FastDecoders<Req, Res> = {},
): Method<Req, Res> => ({
  name,
  request,
  response,
  decodeRequest: optionDecoder(request, fast.request),
  decodeResponse: optionDecoder(response, fast.response),
})
