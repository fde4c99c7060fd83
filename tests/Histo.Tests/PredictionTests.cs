using System.Text.Json;
using Histo.IO;
using Histo.Mil;
using Histo.Pipeline;
using Histo.Slides;

namespace Histo.Tests;

public class PredictionTests(ToyBagsFixture toy,
    SyntheticSlideFixture slide) : IClassFixture<ToyBagsFixture>, IClassFixture<SyntheticSlideFixture>
{
    string TrainedRun(TempDir dir)
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        MilTraining.Run(data, new MilTrainingOptions { Folds = 3, MaxEpochs = 8, MinEpochs = 3 }, dir["run"]);
        return dir["run"];
    }

    [Fact]
    public void PredictWritesProbabilitiesEnergyAndFlags()
    {
        using var dir = new TempDir();
        string run = TrainedRun(dir);
        Assert.True(File.Exists(Path.Combine(run, "roc.png")));
        Assert.True(File.Exists(Path.Combine(run, "training_curves.png")));
        var predictions = PredictionJob.Predict(run, [toy.Features], dir["pred"]);
        Assert.Equal(30, predictions.Count);
        Assert.All(predictions, p => Assert.Equal(1.0, p.Probabilities.Sum(), 5));
        Assert.True(predictions.Count(p => p.Predicted == "abc"[int.Parse(p.SlideId[6..]) % 3].ToString()) >= 25);
        var header = File.ReadLines(dir["pred/predictions.csv"]).First();
        Assert.Equal("slide_id,predicted,p_a,p_b,p_c,energy,out_of_distribution", header);
        // Every slide here was a training slide of most folds: in distribution, so few are flagged (the threshold keeps
        // 95% of validation slides; the flag's arithmetic against hand-computed energies is
        // TrustedResultsTests.EnergyFlagsAHandBuiltOutOfDistributionBag).
        Assert.All(predictions, p => Assert.True(double.IsFinite(p.Energy) && p.OutOfDistribution is not null));
        Assert.True(predictions.Count(p => p.OutOfDistribution == true) <= 3,
            $"{predictions.Count(p => p.OutOfDistribution == true)} of 30 training slides flagged");
        Assert.Contains("histo embed", Assert.Throws<HistoException>(() => PredictionJob.Predict(run, [dir["nothing"]],
            dir["pred"])).Message);
    }

    [Fact]
    public void HeatmapWritesAnImageAndOneScoredTilePerPatch()
    {
        using var dir = new TempDir();
        string run = TrainedRun(dir);
        var tiled = TilingJob.Run(new TilingJobOptions { Slides = [slide.SlidePath], OutputDir = dir["tiles"],
            Tiling = new TilingOptions { TargetMpp = 0.5, PatchSize = 224 } }).Single();
        var coords = PatchCoordinates.Read(dir[$"tiles/coords/{slide.Spec.SlideId}.h5"]);
        var random = new Random(1);
        var f = new float[coords.Count, 8];
        for (int i = 0; i < coords.Count; i++) for (int j = 0; j < 8; j++) f[i, j] = (float)random.NextDouble();
        new PatchFeatures(slide.Spec.SlideId, f, coords.Coords, "toy", coords.PatchSize, coords.TargetMpp, coords.PatchSizeLevel0,
            coords.PatchLevel)
            .Write(dir[$"emb/features/{slide.Spec.SlideId}.h5"]);
        PredictionJob.Heatmap(run, slide.SlidePath, dir[$"emb/features/{slide.Spec.SlideId}.h5"], dir["heat"]);
        var png = Imaging.RgbaImage.Load(dir[$"heat/{slide.Spec.SlideId}.heatmap.png"]);
        Assert.True(png.Width >= 1024);
        using var doc = JsonDocument.Parse(File.ReadAllText(dir[$"heat/{slide.Spec.SlideId}.attention.geojson"]));
        var features = doc.RootElement.GetProperty("features");
        Assert.Equal(tiled.Patches, features.GetArrayLength());
        var first = features[0];
        Assert.Equal("detection", first.GetProperty("properties").GetProperty("objectType").GetString());
        Assert.True(first.GetProperty("properties").GetProperty("measurements").TryGetProperty("attention", out _));
        double x = first.GetProperty("geometry").GetProperty("coordinates")[0][1][0].GetDouble() - first.GetProperty("geometry").GetProperty("coordinates")[0][0][0].GetDouble();
        Assert.Equal(coords.PatchSizeLevel0, x);
    }

    [Fact]
    public void PercentilesAndColourMapAreOrdered()
    {
        var p = Reports.Heatmap.Percentiles([0.3f, 0.1f, 0.3f, 0.9f]);
        Assert.Equal([0.5, 0.0, 0.5, 1.0], p);
        Assert.Equal((68, 1, 84), Reports.Heatmap.Viridis(0));
        Assert.Equal((253, 231, 37), Reports.Heatmap.Viridis(1));
    }
}
