export { ip, NetlabError } from "./ipCommand.ts"
export { type NetHost, NetLab, type NetLabOptions } from "./netLab.ts"
export { netlabProblem, requireNetlab } from "./preflight.ts"
export { sweepStaleNamespaces } from "./sweep.ts"
