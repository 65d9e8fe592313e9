package lakehouse.dedup;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.plans.logical.DeduplicateWithinWatermark;
import org.apache.spark.sql.catalyst.plans.logical.EventTimeWatermark$;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.TransformWithState$;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.catalyst.types.DataTypeUtils;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.Metadata;
import scala.Function1;
import scala.Option;
import scala.collection.immutable.Seq;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractPartialFunction;

/**
 * Plans a streaming {@code dropDuplicatesWithinWatermark} as a {@code transformWithState} of {@link
 * FirstWithinWatermark}, with the same output columns (the same attribute ids), so nothing above it changes. The
 * session's {@code spark.lakehouse.dedup} set to {@code spark} keeps Spark's own operator (for queries analyzed
 * while it is set).
 */
public final class TimerDedupRule extends Rule<LogicalPlan> {
  public static final String SETTING = "spark.lakehouse.dedup";
  private static final String DELAY_KEY = EventTimeWatermark$.MODULE$.delayKey();

  @Override
  public LogicalPlan apply(LogicalPlan plan) {
    if ("spark".equalsIgnoreCase(SQLConf.get().getConfString(SETTING, "timers"))) {
      return plan;
    }
    return plan.transformUp(new AbstractPartialFunction<LogicalPlan, LogicalPlan>() {
      @Override
      public boolean isDefinedAt(LogicalPlan node) {
        return node instanceof DeduplicateWithinWatermark dedup
            && dedup.resolved()
            && dedup.child().isStreaming()
            && eventTimeOrdinal(dedup.child()) >= 0;
      }

      @Override
      public <A1 extends LogicalPlan, B1> B1 applyOrElse(A1 node, Function1<A1, B1> fallback) {
        if (!isDefinedAt(node)) {
          return fallback.apply(node);
        }
        @SuppressWarnings("unchecked")
        B1 planned = (B1) withTimers((DeduplicateWithinWatermark) node);
        return planned;
      }
    });
  }

  private static int eventTimeOrdinal(LogicalPlan child) {
    List<Attribute> output = CollectionConverters.asJava(child.output());
    for (int i = 0; i < output.size(); i++) {
      if (output.get(i).metadata().contains(DELAY_KEY)) {
        return i;
      }
    }
    return -1;
  }

  private static LogicalPlan withTimers(DeduplicateWithinWatermark dedup) {
    LogicalPlan child = dedup.child();
    int ordinal = eventTimeOrdinal(child);
    Metadata metadata = child.output().apply(ordinal).metadata();
    FirstWithinWatermark processor = new FirstWithinWatermark(ordinal, metadata.getLong(DELAY_KEY));
    Encoder<Row> keys = Encoders.row(DataTypeUtils.fromAttributes(dedup.keys()));
    Encoder<Row> rows = Encoders.row(DataTypeUtils.fromAttributes(child.output()));
    LogicalPlan planned = TransformWithState$.MODULE$.apply(
        dedup.keys(), child.output(), processor, TimeMode.EventTime(), OutputMode.Append(), child, keys, rows, rows);
    List<Attribute> before = CollectionConverters.asJava(child.output());
    List<Attribute> after = CollectionConverters.asJava(planned.output());
    List<NamedExpression> renamed = new ArrayList<>(before.size());
    for (int i = 0; i < before.size(); i++) {
      Attribute original = before.get(i);
      renamed.add(new Alias(after.get(i), original.name(), original.exprId(), original.qualifier(),
          Option.apply(original.metadata()), seq(List.of())));
    }
    return new Project(seq(renamed), planned);
  }

  private static <T> Seq<T> seq(List<T> items) {
    return CollectionConverters.asScala(items).toSeq();
  }
}
