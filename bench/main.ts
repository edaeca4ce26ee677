// deno task bench: prints codec figures, then full-call figures with SIPp.
// deno-lint-ignore-file no-console
import { codecBench } from "./codec.ts";

for (const line of codecBench()) console.log(line);
if (!Deno.args.includes("--codec-only")) {
  const { callBench } = await import("./calls.ts");
  for await (const line of callBench()) console.log(line);
}
