/// The ledger's figures at one moment, and the ratios derived from them.
public struct AccountingSnapshot: Sendable {
    public var counters: LedgerCounters
    public var histograms: LedgerHistograms
    public var pending: Int

    public init(counters: LedgerCounters = .init(), histograms: LedgerHistograms = .init(), pending: Int = 0) {
        self.counters = counters
        self.histograms = histograms
        self.pending = pending
    }

    /// useful ÷ issued (tracked ones: every fate counts, a skipped or failed one was not useful).
    public var accuracy: Double {
        let issued = counters.issued - counters.untracked
        return issued <= 0 ? 0 : Double(counters.count(.useful)) / Double(issued)
    }

    /// Accesses served warm thanks to gofetch ÷ all accesses.
    public var coverage: Double {
        counters.accesses == 0 ? 0 : Double(counters.coveredAccesses) / Double(counters.accesses)
    }

    /// Warm accesses ÷ all accesses (the page cache's hit rate as the job saw it).
    public var hitRate: Double {
        counters.accesses == 0 ? 0 : Double(counters.accesses - counters.coldAccesses) / Double(counters.accesses)
    }
}
