@testable import GoFetchEvents
@testable import GoFetchPredict
@testable import GoFetchSystem
import Testing

@Suite("wire format")
struct WireDecoderTests {
    static func sampleEvents(pid: UInt32 = 42) -> [AccessEvent] {
        [
            AccessEvent(kind: .open, pid: pid, tid: 43, fd: 5, monotonicNanoseconds: 1_000, device: 7, inode: 99,
                        offset: 0, length: 4_096, durationNanoseconds: 1_500, path: "/data/train/cat/0001.jpg"),
            AccessEvent(kind: .read, flags: [.positional], pid: pid, tid: 43, fd: 5, workerID: 2, epoch: 1,
                        monotonicNanoseconds: 2_000, device: 7, inode: 99, offset: 0, length: 4_096, durationNanoseconds: 80_000),
            AccessEvent(kind: .mmap, pid: pid, tid: 44, fd: 5, monotonicNanoseconds: 3_000, device: 7, inode: 99,
                        offset: 0, length: 8_192, durationNanoseconds: 900),
            AccessEvent(kind: .close, pid: pid, tid: 43, fd: 5, monotonicNanoseconds: 4_000, device: 7, inode: 99,
                        offset: 0, length: 0, durationNanoseconds: 0),
        ]
    }

    @Test("what the encoder writes, the decoder reads back exactly")
    func roundTrip() throws {
        var encoder = WireEncoder(pid: 42)
        encoder.droppedTotal = 3
        for event in Self.sampleEvents() { encoder.append(event) }
        let message = encoder.finish(sentNanoseconds: 5_000)
        #expect(message.count % 8 == 0)
        var decoder = WireDecoder()
        var events: [AccessEvent] = []
        let header = message.withUnsafeBytes { decoder.decode($0, into: &events) }
        #expect(header?.droppedTotal == 3)
        #expect(header?.recordCount == 4)
        #expect(events == Self.sampleEvents())
        #expect(decoder.statistics.total == 0)
    }

    @Test("lookahead and epoch records decode with their paths and flags")
    func controlRecords() {
        var encoder = WireEncoder(source: .pythonHook, pid: 5)
        let announced = AccessEvent(kind: .lookahead, flags: [.announcementStart], source: .pythonHook, pid: 5, tid: 5, fd: -1,
                                    workerID: 1, epoch: 3, monotonicNanoseconds: 9, device: 0, inode: 0, offset: 0,
                                    length: 4_096, durationNanoseconds: 0, path: "/data/a.jpg")
        let epoch = AccessEvent(kind: .epoch, source: .pythonHook, pid: 5, tid: 5, fd: -1, workerID: -1 < 0 ? nil : 0, epoch: 3,
                                monotonicNanoseconds: 8, device: 0, inode: 0, offset: 0, length: 0, durationNanoseconds: 0)
        encoder.append(epoch)
        encoder.append(announced)
        let message = encoder.finish()
        var decoder = WireDecoder()
        var events: [AccessEvent] = []
        _ = message.withUnsafeBytes { decoder.decode($0, into: &events) }
        #expect(events == [epoch, announced])
        #expect(decoder.statistics.total == 0)
    }

    @Test("each kind of damage is rejected and counted under its reason")
    func damage() throws {
        var encoder = WireEncoder(pid: 1)
        for event in Self.sampleEvents() { encoder.append(event) }
        let good = encoder.finish()

        func decode(_ bytes: [UInt8]) -> (WireDecodeStatistics, Int) {
            var decoder = WireDecoder()
            var events: [AccessEvent] = []
            bytes.withUnsafeBytes { _ = decoder.decode($0, into: &events) }
            return (decoder.statistics, events.count)
        }
        #expect(decode(Array(good.prefix(10))).0[.shortHeader] == 1)
        var bytes = good
        bytes[0] = 0x00
        #expect(decode(bytes).0[.badMagic] == 1)
        bytes = good
        bytes[2] = 9
        #expect(decode(bytes).0[.unsupportedVersion] == 1)
        // Cut inside the last record: three records survive.
        let (cut, kept) = decode(Array(good.prefix(good.count - 8)))
        #expect(cut[.truncatedRecord] == 1)
        #expect(kept == 3)
        // An unknown kind skips one record and keeps the rest.
        bytes = good
        let secondRecord = WireFormat.headerSize + 64 + 32  // open record: 64 + 2 + 24-byte path, padded to 96
        #expect(bytes[secondRecord + 2] == AccessKind.read.rawValue)
        bytes[secondRecord + 2] = 77
        let (unknown, survivors) = decode(bytes)
        #expect(unknown[.unknownKind] == 1)
        #expect(survivors == 3)
        // A record size that cannot be trusted ends the message.
        bytes = good
        bytes[secondRecord] = 13
        let (badSize, before) = decode(bytes)
        #expect(badSize[.badRecordSize] == 1)
        #expect(before == 1)
        // A path that is not absolute.
        bytes = good
        bytes[WireFormat.headerSize + 66] = UInt8(ascii: "x")
        #expect(decode(bytes).0[.badPath] == 1)
        // A path holding a NUL: the kernel would open "/data/tr", not the file the record names.
        bytes = good
        bytes[WireFormat.headerSize + 66 + 8] = 0
        #expect(decode(bytes).0[.badPath] == 1)
    }

    @Test("a path that is not UTF-8 keeps its bytes, through the wire and back")
    func pathBytes() throws {
        // Latin-1 "café", a lone continuation byte, a cut 3-byte sequence, and a genuine
        // U+EF80 (the first scalar of the escape range, EE BE 80), which must not be taken for an escape.
        let names: [[UInt8]] = [
            Array("/data/caf".utf8) + [0xE9, 0x2E, 0x6A, 0x70, 0x67],
            Array("/data/".utf8) + [0x80],
            Array("/data/".utf8) + [0xE2, 0x82],
            Array("/data/".utf8) + [0xEE, 0xBE, 0x80] + Array("x".utf8),
            Array("/data/ok/ünïcode.bin".utf8),
        ]
        var encoder = WireEncoder(pid: 9)
        for name in names {
            let path = try #require(PathName.decode(name))
            #expect(PathName.bytes(path) == name)
            encoder.append(AccessEvent(kind: .open, pid: 9, tid: 9, fd: 3, monotonicNanoseconds: 1, device: 1, inode: 2,
                                       offset: 0, length: 10, durationNanoseconds: 1, path: path))
        }
        #expect(PathName.decode(Array("/data/ok/ünïcode.bin".utf8)) == "/data/ok/ünïcode.bin")  // UTF-8 is unchanged
        let message = encoder.finish()
        var decoder = WireDecoder()
        var events: [AccessEvent] = []
        _ = message.withUnsafeBytes { decoder.decode($0, into: &events) }
        #expect(decoder.statistics.total == 0)
        #expect(events.map { PathName.bytes($0.path!) } == names)
        #expect(PathName.decode(Array("/a".utf8) + [0] + Array("b".utf8)) == nil)
        #expect((Array("/a".utf8) + [0] + Array("b".utf8)).withUnsafeBytes { PathName.decode($0) } == nil)

        // Every byte string without a NUL has one text and back.
        var generator = SplitMix64(seed: 11)
        for _ in 0..<5_000 {
            let count = Int(generator.next() % 24) + 1
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next() % 255 + 1) }
            let text = try #require(PathName.decode(bytes))
            #expect(PathName.bytes(text) == bytes)
            #expect(bytes.withUnsafeBytes { PathName.decode($0) } == text)  // the overload for bytes in memory agrees
            #expect(PathName.withCString(text) { String(cString: $0).isEmpty == false })
        }
    }

    @Test("random bytes never crash the decoder")
    func randomBytes() {
        var generator = SplitMix64(seed: 7)
        var decoder = WireDecoder()
        var events: [AccessEvent] = []
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 600)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if count > 4, generator.next() % 2 == 0 {
                // Often a plausible header, so the record checks are exercised too.
                bytes[0] = 0x47; bytes[1] = 0x46; bytes[2] = 1; bytes[3] = 1
                if count > 8 { bytes[6] = 24; bytes[7] = 0 }
            }
            bytes.withUnsafeBytes { _ = decoder.decode($0, into: &events) }
        }
        #expect(decoder.statistics.total > 0)
    }
}
