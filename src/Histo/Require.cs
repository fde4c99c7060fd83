namespace Histo;

/// <summary>
/// Checks of option values, shared by every command's options record, so that NaN, infinities and zeros are
/// refused the same way everywhere (a comparison such as <c>x &lt; 0</c> lets NaN through).
/// Each failure is a <see cref="UsageException"/> naming the option and the value.
/// </summary>
public static class Require
{
    /// <summary>A finite number above zero.</summary>
    public static void Positive(string option, double value)
    {
        if (!(value > 0) || !double.IsFinite(value)) throw new UsageException($"{option} {Show(value)} must be a positive finite number");
    }

    /// <summary>A finite number at or above zero.</summary>
    public static void NonNegative(string option, double value)
    {
        if (!(value >= 0) || !double.IsFinite(value)) throw new UsageException($"{option} {Show(value)} must be a finite number >= 0");
    }

    /// <summary>A finite number in [min, max].</summary>
    public static void InRange(string option, double value, double min, double max)
    {
        if (!(value >= min
            && value <= max)) throw new UsageException($"{option} {Show(value)} must be between {Show(min)} and {Show(max)}");
    }

    /// <summary>A whole number at or above <paramref name="min"/>.</summary>
    public static void AtLeast(string option, long value, long min)
    {
        if (value < min) throw new UsageException($"{option} {value} must be at least {min}");
    }

    static string Show(double value) => value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The options every training recipe with AdamW and a warm-up shares (--epochs, --batch-size, --lr,
    /// --weight-decay, --warmup-epochs).</summary>
    public static void TrainingSchedule(int epochs, int batchSize, double learningRate, double weightDecay, int warmupEpochs)
    {
        AtLeast("--epochs", epochs, 1);
        AtLeast("--batch-size", batchSize, 2);
        Positive("--lr", learningRate);
        NonNegative("--weight-decay", weightDecay);
        AtLeast("--warmup-epochs", warmupEpochs, 0);
        if (warmupEpochs >= epochs && warmupEpochs > 0)
            throw new UsageException($"--warmup-epochs {warmupEpochs} must be fewer than --epochs {epochs}");
    }
}
