// Markov training and prediction cost, measured on this machine.
//
//   swift run -c release gofetch-bench-predict [events-in-millions]
//
// Trains a Markov predictor on 10 M opens (a data set of 100 k files read in a
// repeated order by 8 workers, each epoch's order a seeded shuffle of the last, so
// the model holds many contexts), reports training time and peak memory (VmHWM),
// then times 1 M predictions (top-5 + an 8-step path) and prints p50/p99.
import Foundation
import GoFetchEvents
import GoFetchPredict
import GoFetchSystem

let millions = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 10 : 10
let events = Int(millions * 1_000_000)
let files = 100_000
let workers = 8

func residentHighWater() -> String {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix("VmHWM") }.map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) } ?? "?"
}

var generator = SplitMix64(seed: 42)
var order = (1...files).map { FileID($0) }
let markov = MarkovPredictor()
print("before training: VmHWM \(residentHighWater())")
let start = Clock.monotonicNanoseconds()
var fed = 0
var epoch = 0
while fed < events {
    if epoch % 3 == 0 { order.shuffle(using: &generator) }  // the order changes every third epoch
    for (index, file) in order.enumerated() where fed < events {
        markov.observe(file: file, stream: StreamKey(pid: 0, worker: Int32(index % workers)))
        fed += 1
    }
    epoch += 1
}
let trainSeconds = Double(Clock.monotonicNanoseconds() - start) / 1e9
print("trained on \(fed) opens in \(Format.fixed(trainSeconds, 2)) s (\(Format.fixed(Double(fed) / trainSeconds / 1e6, 2)) M opens/s): \(markov.contextCount) contexts, \(markov.contextsEvicted) evicted; VmHWM \(residentHighWater())")

var latencies: [UInt64] = []
latencies.reserveCapacity(1_000_000)
var sink = 0
for i in 0..<1_000_000 {
    let stream = StreamKey(pid: 0, worker: Int32(i % workers))
    let t0 = Clock.monotonicNanoseconds()
    sink &+= markov.predict(stream: stream, limit: 5, depth: 8).count
    latencies.append(Clock.monotonicNanoseconds() - t0)
    markov.observe(file: order[i % files], stream: stream)
}
latencies.sort()
let sorted = latencies
func percentile(_ p: Double) -> String { Format.duration(nanoseconds: sorted[Int(Double(sorted.count - 1) * p)]) }
print("predict (top-5 + 8-step path), 1 M calls: p50 \(percentile(0.5)), p99 \(percentile(0.99)), p99.9 \(percentile(0.999)), max \(percentile(1.0)) (\(sink) predictions)")
