import Foundation
import Glibc
import GoFetchSystem
import Logging
import Synchronization
import SystemPackage

/// Loads ranges of open files into the page cache with the method that works on
/// their device: the prefetch executor and `gofetch cache --warm` both warm through it.
///
/// Without a forced method, files on FUSE and network file systems are read into a
/// buffer: the read returns when the data is in, so the executor's
/// ``ConcurrencyWindow`` sees the storage's real answer times and bounds what is in
/// flight (a hint returns at once and leaves any amount of I/O queued at the link,
/// ahead of the job's own reads). On other devices a hint (`fadvise`, then
/// `readahead`) is tried and checked with cachestat; where hints leave pages out,
/// the device falls back to reading, and the choice is remembered per device. A
/// hint reads at most the device's readahead window from its offset, so hints go
/// in slices of that size.
package final class PageCacheWarmer: Sendable {
    /// What one `warm` did.
    struct Warming {
        /// The method that loaded the range.
        var method: PrefetchMethod
        /// Pages of the range resident afterwards.
        var residentAfter: UInt64
        /// Hints left the range out, so its device moved to `method` during this call.
        var switchedMethod: Bool
    }

    /// The method every range is warmed with; `nil` chooses per device.
    let forcedMethod: PrefetchMethod?
    private let logger: Logger
    private let devices = Mutex([UInt64: PrefetchMethod]())
    private let windows = Mutex([UInt64: UInt64]())

    init(method: PrefetchMethod?, logger: Logger) {
        forcedMethod = method
        self.logger = logger
    }

    /// Loads `length` bytes at `offset` of an open file and measures what became resident.
    /// - Parameters:
    ///   - device: the file's device, whose method is chosen and remembered.
    ///   - residentBefore: pages of the range resident before, to judge whether a hint worked.
    ///   - buffer: where the `read` method reads to.
    /// - Returns: the method used and the pages resident afterwards.
    func warm(
        _ fd: FileDescriptor, device: UInt64, offset: UInt64, length: UInt64, residentBefore: UInt64,
        buffer: UnsafeMutableRawBufferPointer
    ) throws(Errno) -> Warming {
        let method = forcedMethod ?? devices.withLock { $0[device] } ?? {
            let first: PrefetchMethod = Syscall.isRemote(fd) ? .read : .fadvise
            devices.withLock { $0[device] = first }
            return first
        }()
        try load(fd, offset: offset, length: length, method: method, device: device, buffer: buffer)
        var residentAfter = try Syscall.residentPages(fd, offset: offset, length: length)
        guard forcedMethod == nil && method != .read && residentAfter <= residentBefore else {
            return Warming(method: method, residentAfter: residentAfter, switchedMethod: false)
        }
        // Hints are asynchronous: give the device a moment before judging it.
        for _ in 0..<20 where residentAfter <= residentBefore {
            usleep(2_000)
            residentAfter = try Syscall.residentPages(fd, offset: offset, length: length)
        }
        if residentAfter > residentBefore {
            devices.withLock { $0[device] = method }
            return Warming(method: method, residentAfter: residentAfter, switchedMethod: false)
        }
        let fallback: PrefetchMethod = method == .fadvise ? .readahead : .read
        devices.withLock { $0[device] = fallback }
        logger.notice("hints left pages out; switching method", metadata: ["device": "\(device)", "method": "\(fallback)"])
        try load(fd, offset: offset, length: length, method: fallback, device: device, buffer: buffer)
        residentAfter = try Syscall.residentPages(fd, offset: offset, length: length)
        return Warming(method: fallback, residentAfter: residentAfter, switchedMethod: true)
    }

    private func load(
        _ fd: FileDescriptor, offset: UInt64, length: UInt64, method: PrefetchMethod, device: UInt64,
        buffer: UnsafeMutableRawBufferPointer
    ) throws(Errno) {
        switch method {
        case .fadvise, .readahead:
            let slice = windows.withLock { cache in
                if let known = cache[device] { return known }
                let window = Self.readaheadWindow(device: device)
                cache[device] = window
                return window
            }
            var position = offset
            while position < offset + length {
                let size = min(slice, offset + length - position)
                if method == .fadvise {
                    try Syscall.adviseWillNeed(fd, offset: position, length: size)
                } else {
                    try Syscall.readahead(fd, offset: position, length: size)
                }
                position += size
            }
        case .read:
            var position = offset
            while position < offset + length {
                let count = try Syscall.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(UInt64(buffer.count), offset + length - position))]), offset: position)
                if count <= 0 { break }
                position += UInt64(count)
            }
        }
    }

    /// Drops the cached pages of `path`, opened read-only as `uid`/`gid`/`groups`
    /// (clean pages: no I/O). `false` when it cannot be opened as them.
    static func giveBack(_ path: String, uid: UInt32, gid: UInt32, groups: [UInt32]) -> Bool {
        guard let fd = try? Syscall.asFileSystemUser(uid: uid, gid: gid, groups: groups, { () throws(Errno) in try Syscall.openRegularFile(path).fd }) else { return false }
        defer { try? fd.close() }
        return (try? Syscall.adviseDontNeed(fd, offset: 0, length: 0)) != nil
    }

    /// The most one hint reads: the device's readahead window (`read_ahead_kb` of its
    /// bdi), 128 KiB when unknown, as on FUSE and network file systems.
    package static func readaheadWindow(device: UInt64) -> UInt64 {
        let major = (device >> 8) & 0xfff | (device >> 32) & ~0xfff
        let minor = device & 0xff | (device >> 12) & ~0xff
        let path = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
           let kib = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), kib > 0 {
            return kib * 1024
        }
        return 128 * 1024
    }
}
