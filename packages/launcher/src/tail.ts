/** The last `limit` characters of a growing text: what a failure message shows of a process's output. */
export class Tail {
  private text = ""

  constructor(private readonly limit: number) {}

  push(chunk: string): void {
    this.text += chunk
    // Trimmed once it is well past the limit, so a chatty process is not re-sliced on every chunk.
    if (this.text.length > 2 * this.limit) this.text = this.text.slice(-this.limit)
  }

  toString(): string {
    return this.text.length > this.limit ? this.text.slice(-this.limit) : this.text
  }
}
