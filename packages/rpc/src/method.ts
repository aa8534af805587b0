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

const optionDecoder = <A>(schema: Schema.Decoder<A>): ((input: unknown) => A | undefined) => {
  const decode = Schema.decodeUnknownExit(schema)
  return (input) => {
    const exit = decode(input)
    return exit._tag === "Success" ? exit.value : undefined
  }
}

export const defineMethod = <Req, Res>(
  name: string,
  request: Schema.Decoder<Req>,
  response: Schema.Decoder<Res>,
): Method<Req, Res> => ({
  name,
  request,
  response,
  decodeRequest: optionDecoder(request),
  decodeResponse: optionDecoder(response),
})
