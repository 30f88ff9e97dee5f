import ArgumentParser
import Foundation
import GoFetchConfig
import GoFetchTraceSources

/// Which trace source records the job.
struct TraceSourceOptions: ParsableArguments {
    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case preload, fanotify, ebpf
    }

    @Option(help: "Trace source: preload (the LD_PRELOAD shim; no root needed, byte ranges and timings), fanotify (kernel marks; root; the job untouched; opens and reads without byte counts) or ebpf (tracepoints; root and BTF; the job untouched; byte counts, read timings and page-cache misses).")
    var backend: Backend = .preload

    @Option(name: .customLong("mark"), help: ArgumentHelp("fanotify: watch the file system holding this path (repeatable; default: trace.include_prefixes, else the current folder).", valueName: "path"))
    var marks: [String] = []

    func makeKernelSource(_ configuration: Configuration) throws -> (any KernelTraceSource)? {
        switch backend {
        case .preload:
            return nil
        case .fanotify:
            var paths = marks.isEmpty ? configuration.trace.includePrefixes : marks
            if paths.isEmpty { paths = [FileManager.default.currentDirectoryPath] }
            return try FanotifySource(paths: paths, filter: TracePathFilter(configuration))
        case .ebpf:
            return try EBPFSource(filter: TracePathFilter(configuration))
        }
    }
}
