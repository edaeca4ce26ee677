// deno task bench: prints codec figures, the SIP layers' CPU and memory per call
// (bench/memory.ts), the cost of a gRPC call, then full-call
// figures with SIPp, then 100,000 dialogs held up (bench/dialogs.ts). `--codec-only`
// stops after the codec; `--calls=full` (or `minimal`, `in-memory`, `tcp`, `scaleout`,
// `dialogs`, comma-separated) runs only those parts (`tcp`: the service over TCP;
// `scaleout`: one and two instances behind Kamailio, bench/scaleout.ts); `--dialogs=N` holds N dialogs up.
// deno-lint-ignore-file no-console
import { codecBench } from "./codec.ts";
import { timerBench } from "./timers.ts";
import type { CallBenchPart } from "./calls.ts";

for (const line of codecBench()) console.log(line);
for (const line of timerBench()) console.log(line);
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
    const { relayBench } = await import("./relay.ts");
    for await (const line of relayBench()) console.log(line);
  }
  const ladders = (only ?? ["minimal", "in-memory", "full", "tcp"]).filter((p) =>
    p !== "dialogs" && p !== "scaleout"
  );
  if (ladders.length > 0) {
    const { callBench } = await import("./calls.ts");
    for await (const line of callBench(ladders as CallBenchPart[])) console.log(line);
  }
  if (only === undefined || only.includes("scaleout")) {
    const { scaleoutBench } = await import("./scaleout.ts");
    for await (const line of scaleoutBench()) console.log(line);
  }
  if (only === undefined || only.includes("dialogs")) {
    const { dialogBench } = await import("./dialogs.ts");
    const count = Number(
      Deno.args.find((a) => a.startsWith("--dialogs="))?.slice("--dialogs=".length) ?? 100_000,
    );
    for await (const line of dialogBench(count)) console.log(line);
  }
}
