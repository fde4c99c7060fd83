using ScottPlot;

namespace Histo.Reports;

/// <summary>Figures a person would rather look at than read: ROC curves and training curves (ScottPlot, PNG).</summary>
public static class Plots
{
    /// <summary>One ROC curve per series (e.g. per fold), with the chance diagonal and each AUC in the legend.</summary>
    public static void RocCurves(string path, string title, IEnumerable<(string Name, IReadOnlyList<(double Fpr, double Tpr)> Curve, double Auc)> series)
    {
        var plot = new Plot();
        var chance = plot.Add.Line(0, 0, 1, 1);
        chance.LineColor = Colors.Gray;
        chance.LinePattern = LinePattern.Dashed;
        foreach (var (name, curve, auc) in series)
        {
            var line = plot.Add.Scatter(curve.Select(p => p.Fpr).ToArray(), curve.Select(p => p.Tpr).ToArray());
            line.MarkerSize = 0;
            line.LineWidth = 2;
            line.LegendText = $"{name} (AUC {auc:0.000})";
        }
        plot.Title(title);
        plot.XLabel("false positive rate");
        plot.YLabel("true positive rate");
        plot.Axes.SetLimits(-0.01, 1.01, -0.01, 1.01);
        plot.ShowLegend(Alignment.LowerRight);
        Save(plot, path, 640, 560);
    }

    /// <summary>Training and validation loss per epoch, one pair of lines per fold, with the best epoch marked.</summary>
    public static void TrainingCurves(string path, string title, IEnumerable<(string Name, double[] Train, double[] Val, int BestEpoch)> folds)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int i = 0;
        foreach (var (name, train, val, best) in folds)
        {
            var color = palette.GetColor(i++);
            double[] epochs = Enumerable.Range(1, train.Length).Select(e => (double)e).ToArray();
            var t = plot.Add.Scatter(epochs, train);
            t.Color = color; t.MarkerSize = 0; t.LinePattern = LinePattern.Dashed; t.LegendText = $"{name} train";
            var v = plot.Add.Scatter(epochs, val);
            v.Color = color; v.MarkerSize = 0; v.LineWidth = 2; v.LegendText = $"{name} validation";
            if (best >= 1 && best <= val.Length)
            {
                var m = plot.Add.Marker(best, val[best - 1]);
                m.Color = color; m.Size = 9;
            }
        }
        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel("loss");
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, 760, 520);
    }

    static void Save(Plot plot, string path, int width, int height)
    {
        string tmp = IO.AtomicFile.TemporaryPath(path) + ".png";
        plot.SavePng(tmp, width, height);
        File.Move(tmp, path, overwrite: true);
    }
}
