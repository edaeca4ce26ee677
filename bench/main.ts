// deno task bench: prints codec figures, the SIP layers' CPU and memory per call
// (bench/memory.ts), the cost of a gRPC call, then full-call
// figures with SIPp. `--codec-only` stops after the codec; `--calls=full` (or
// `minimal`, `in-memory`, comma-separated) runs only those call ladders.
// deno-lint-ignore-file no-console
import { codecBench } from "./codec.ts";
import type { CallBenchPart } from "./calls.ts";

for (const line of codecBench()) console.log(line);
{
  // The SIP layers' CPU and memory per call; a process of its own for --expose-gc.
  const out = await new Deno.Command("deno", {
    args: ["run", "--v8-flags=--expose-gc", "-P=bench", new URL("./memory.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "null",
  }).output();
  console.log(new TextDecoder().decode(out.stdout).trimEnd());
}
if (!Deno.args.includes("--codec-only")) {
  const only = Deno.args.find((a) => a.startsWith("--calls="))?.slice("--calls=".length).split(",");
  if (only === undefined) {
    const { grpcBench } = await import("./grpc.ts");
    for await (const line of grpcBench()) console.log(line);
  }
  const { callBench } = await import("./calls.ts");
  for await (const line of callBench(only as CallBenchPart[] | undefined)) console.log(line);
}
