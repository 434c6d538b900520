/**
 * What TLS adds on a link, read from the record headers of each connection's byte stream (type, version,
 * 2-byte length) without decrypting anything. In TLS 1.3 every protected record (outer type 23) carries
 * its plaintext plus a 1-byte inner content type and a 16-byte AEAD tag (AES-GCM and ChaCha20-Poly1305
 * alike); ServerHello and the compatibility ChangeCipherSpec travel in the clear (types 22 and 20). What
 * this cannot split is the encrypted part of the handshake (certificate, verify, finished, session
 * tickets) from the HTTP bytes inside the protected records: subtract a plain run's bytes for that.
 */
export interface TlsRecordTotals {
  /** Connections that spoke TLS (their first byte was a record header). */
  connections: number;
  records: number;
  protectedRecords: number;
  /** Bytes of the cleartext records (ServerHello, ChangeCipherSpec), headers included. */
  cleartextRecordBytes: number;
  /** Header, inner type and tag of the protected records: 22 B each. */
  protectedRecordOverheadBytes: number;
  /** What the protected records carry: HTTP bytes plus the encrypted handshake and session tickets. */
  protectedPlaintextBytes: number;
  /** Bytes not in a well-formed record (a connection that was not TLS). */
  otherBytes: number;
}

const HEADER = 5;
/** 1-byte inner content type and 16-byte AEAD tag of a TLS 1.3 protected record. */
const PROTECTION = 17;
const RECORD_TYPES = new Set([20, 21, 22, 23]);

interface ConnState {
  header: Buffer;
  have: number;
  /** Body bytes of the current record still to come. */
  body: number;
  notTls: boolean;
}

export class TlsRecordCounter {
  readonly totals: TlsRecordTotals = {
    connections: 0,
    records: 0,
    protectedRecords: 0,
    cleartextRecordBytes: 0,
    protectedRecordOverheadBytes: 0,
    protectedPlaintextBytes: 0,
    otherBytes: 0,
  };
  private readonly conns = new Map<number, ConnState>();
  private readonly seen = new Set<number>();

  /** The next bytes of one direction of connection `conn`, in order. */
  feed(conn: number, piece: Buffer): void {
    let st = this.conns.get(conn);
    if (!st) {
      st = { header: Buffer.alloc(HEADER), have: 0, body: 0, notTls: false };
      this.conns.set(conn, st);
    }
    let off = 0;
    while (off < piece.byteLength) {
      if (st.notTls) {
        this.totals.otherBytes += piece.byteLength - off;
        return;
      }
      if (st.body > 0) {
        const n = Math.min(st.body, piece.byteLength - off);
        st.body -= n;
        off += n;
        continue;
      }
      const n = Math.min(HEADER - st.have, piece.byteLength - off);
      piece.copy(st.header, st.have, off, off + n);
      st.have += n;
      off += n;
      if (st.have < HEADER) return;
      st.have = 0;
      this.record(conn, st);
    }
  }

  private record(conn: number, st: ConnState): void {
    const type = st.header[0]!;
    const length = st.header.readUInt16BE(3);
    if (!RECORD_TYPES.has(type) || st.header[1] !== 3) {
      st.notTls = true;
      this.totals.otherBytes += HEADER;
      return;
    }
    if (!this.seen.has(conn)) {
      this.seen.add(conn);
      this.totals.connections++;
    }
    st.body = length;
    this.totals.records++;
    if (type === 23) {
      this.totals.protectedRecords++;
      this.totals.protectedRecordOverheadBytes += HEADER + PROTECTION;
      this.totals.protectedPlaintextBytes += length - PROTECTION;
    } else {
      this.totals.cleartextRecordBytes += HEADER + length;
    }
  }
}
