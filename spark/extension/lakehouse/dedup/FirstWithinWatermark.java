package lakehouse.dedup;

import java.sql.Timestamp;
import java.time.Instant;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import scala.collection.Iterator;
import scala.package$;

/**
 * What {@code dropDuplicatesWithinWatermark} does, with each key's expiry kept as an event-time timer.
 *
 * <p>A row passes the first time its key is seen; its key is held until the watermark passes its event time plus the
 * watermark delay, as Spark's own operator holds it. Rows at or before the batch's watermark are dropped (Spark's
 * operator drops them at the previous batch's). Spark's operator finds the expired keys by reading every key it
 * holds, in every micro-batch; timers are kept in time order, so an eviction reads only the keys that expire. A row
 * without an event time passes and is not held.
 */
public final class FirstWithinWatermark extends StatefulProcessor<Row, Row, Row> {
  private static final long serialVersionUID = 1L;
  private final int eventTimeOrdinal;
  private final long delayMicros;
  private transient ValueState<Long> expiresAt;

  public FirstWithinWatermark(int eventTimeOrdinal, long delayMs) {
    this.eventTimeOrdinal = eventTimeOrdinal;
    this.delayMicros = delayMs * 1000L;
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    expiresAt = getHandle().getValueState("expires_at", Encoders.LONG(), TTLConfig.NONE());
  }

  @Override
  public Iterator<Row> handleInputRows(Row key, Iterator<Row> rows, TimerValues timerValues) {
    if (!rows.hasNext()) {
      return empty();
    }
    Row row = rows.next();
    // checked before the state: the stream's message rows (a key each, no event time) then cost no state read
    if (row.isNullAt(eventTimeOrdinal)) {
      return single(row);
    }
    if (expiresAt.exists()) {
      return empty();
    }
    long watermarkMicros = timerValues.getCurrentWatermarkInMs() * 1000L;
    while (true) {
      if (row.isNullAt(eventTimeOrdinal)) {
        return single(row);
      }
      long eventMicros = micros(row.get(eventTimeOrdinal));
      if (eventMicros > watermarkMicros) {
        long expiry = eventMicros + delayMicros;
        expiresAt.update(expiry);
        // a timer fires once the watermark reaches it; Spark's operator evicts once the watermark is past the expiry
        getHandle().registerTimer(Math.floorDiv(expiry, 1000L) + 1L);
        return single(row);
      }
      if (!rows.hasNext()) {
        return empty();
      }
      row = rows.next();
    }
  }

  @Override
  public Iterator<Row> handleExpiredTimer(Row key, TimerValues timerValues, ExpiredTimerInfo expiredTimerInfo) {
    expiresAt.clear();
    return empty();
  }

  private static long micros(Object value) {
    if (value instanceof Instant instant) {
      return Math.addExact(Math.multiplyExact(instant.getEpochSecond(), 1_000_000L), instant.getNano() / 1000L);
    }
    Timestamp timestamp = (Timestamp) value;
    return Math.floorDiv(timestamp.getTime(), 1000L) * 1_000_000L + timestamp.getNanos() / 1000L;
  }

  private static Iterator<Row> empty() {
    return package$.MODULE$.Iterator().empty();
  }

  private static Iterator<Row> single(Row row) {
    return package$.MODULE$.Iterator().single(row);
  }
}
