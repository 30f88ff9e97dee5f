import CGoFetchLinux
import Glibc
import Foundation
import SystemPackage

/// What `/proc/PID/status` tells of a process's credentials.
package struct ProcessCredentials: Equatable, Sendable {
    /// Real, effective, saved and file-system ids.
    package var uids: [UInt32]
    package var gids: [UInt32]
    /// Supplementary groups.
    package var groups: [UInt32]

    /// The ids the kernel checks file access with (the fourth of each line; the
    /// effective ones follow them unless the process set them apart with setfsuid).
    package var fileSystemUID: UInt32 { uids.count > 3 ? uids[3] : uids[uids.count - 1] }
    package var fileSystemGID: UInt32 { gids.count > 3 ? gids[3] : gids[gids.count - 1] }

    /// `nil` when the process is gone.
    package static func of(_ pid: UInt32) -> ProcessCredentials? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return parse(text)
    }

    package static func parse(_ text: String) -> ProcessCredentials? {
        var uids: [UInt32]?, gids: [UInt32]?, groups: [UInt32] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard let key = fields.first else { continue }
            let values = fields.dropFirst().compactMap { UInt32($0) }
            switch key {
            case "Uid:": uids = values
            case "Gid:": gids = values
            case "Groups:": groups = values
            default: continue
            }
        }
        guard let uids, let gids, !uids.isEmpty, !gids.isEmpty else { return nil }
        return ProcessCredentials(uids: uids, gids: gids, groups: groups)
    }
}
