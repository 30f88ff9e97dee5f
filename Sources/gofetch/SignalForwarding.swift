import Dispatch
import Glibc
import GoFetchSystem

/// Passes the signals gofetch receives on to the command it runs.
final class SignalForwarding {
    private let sources: [any DispatchSourceSignal]

    init(to child: ChildProcess, signals: [Int32]) {
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { child.signal(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
