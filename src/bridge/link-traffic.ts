/**
 * Counters of one bridge link, read by the metrics scrape and the status page: frames and bytes each way
 * (bytes = the frame's encoded length as sent or received, before WebSocket framing), the heartbeat's last
 * round-trip time, and the streams paused each way. Plain numbers: counting is an addition per frame.
 */
export class LinkTraffic {
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** last bridge-ping → bridge-pong round trip, ms; 0 until the first pong */
  rttMs = 0;
  /** bridge-stream-pause frames sent (a client of ours read slower than the peer streamed) and received */
  pausesSent = 0;
  pausesReceived = 0;
  /** bridge-pong frames that answered no ping of ours (unasked, repeated or made up: ignored; the first is logged) */
  unmatchedPongs = 0;

  sent(bytes: number): void {
    this.framesOut++;
    this.bytesOut += bytes;
  }

  received(bytes: number): void {
    this.framesIn++;
    this.bytesIn += bytes;
  }
}
