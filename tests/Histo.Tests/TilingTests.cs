using Histo.Imaging;
using Histo.IO;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Tests;

/// <summary>One small synthetic tumour slide shared by the tiling tests (generated once, deterministic).</summary>
public sealed class SyntheticSlideFixture : IDisposable
{
    public TempDir Dir { get; } = new();
    public SyntheticSlideSpec Spec { get; }
    public string SlidePath => Dir[Spec.SlideId + ".tif"];
    public RgbaImage TissueTruth { get; }

    /// <summary>One slide of each subtype; <see cref="Spec"/> is a tumour slide.</summary>
    public IReadOnlyList<SyntheticSlideSpec> All { get; }

    public SyntheticSlideFixture()
    {
        var options = new SyntheticCohortOptions { Slides = 9, Seed = 7, Width = 2048, Height = 1536 };
        All = SyntheticCohort.Plan(options).GroupBy(s => s.Subtype).Select(g => g.First()).ToList();
        foreach (var spec in All) SyntheticCohort.WriteSlide(spec, Dir.Path);
        Spec = All.First(s => s.Subtype != TissueSubtype.Normal);
        TissueTruth = Truth(Spec);
    }

    public RgbaImage Truth(SyntheticSlideSpec spec) => RgbaImage.Load(Dir[spec.SlideId + ".tissue-mask.png"]);

    public void Dispose() => Dir.Dispose();
}

public class TilingTests(SyntheticSlideFixture fixture) : IClassFixture<SyntheticSlideFixture>
{
    /// <summary>Fraction of ground-truth tissue in a level-0 square (mask downsample 1 at this size).</summary>
    static double TruthFraction(RgbaImage t, long x, long y, int size)
    {
        int on = 0;
        for (long yy = y; yy < y + size; yy++)
            for (long xx = x; xx < x + size; xx++)
                if (t.Pixels[(yy * t.Width + xx) * 4] > 127) on++;
        return on / (double)(size * size);
    }

    [Fact]
    public void SyntheticSlideOpensWithPyramidAndMpp()
    {
        using var slide = WholeSlide.Open(fixture.SlidePath);
        Assert.Equal("generic-tiff", slide.Vendor);
        Assert.Equal(2048, slide.Width);
        Assert.True(slide.Levels.Count >= 3);
        Assert.Equal(0.5, slide.Mpp!.Value.X, 6);
        Assert.Equal(2.0, slide.Levels[1].Downsample, 6);
    }

    [Theory]
    [InlineData(128, 0.5)]
    [InlineData(64, 0.25)]
    [InlineData(128, 0.9)]
    public void KeptPatchesReachTheTissueThresholdAndNoTissuePatchIsMissed(int patch, double minTissue)
    {
        foreach (var spec in fixture.All) CheckAgainstTruth(spec, patch, minTissue);
    }

    void CheckAgainstTruth(SyntheticSlideSpec spec, int patch, double minTissue)
    {
        var truthMask = fixture.Truth(spec);
        using var slide = WholeSlide.Open(fixture.Dir[spec.SlideId + ".tif"]);
        var (coords, _) = Tiler.Tile(slide, new TilingOptions { PatchSize = patch, TargetMpp = 0.5, MinTissue = minTissue });
        Assert.True(coords.Count > 10);
        var kept = new HashSet<(long, long)>();
        for (int k = 0; k < coords.Count; k++)
        {
            long x = coords.Coords[k, 0], y = coords.Coords[k, 1];
            kept.Add((x, y));
            double truth = TruthFraction(truthMask, x, y, patch);
            Assert.True(truth >= minTissue,
                $"{spec.SlideId} ({spec.Label}): patch ({x},{y}) has true tissue fraction {truth:F3} < {minTissue}");
        }
        for (long y = 0; y + patch <= slide.Height; y += patch)
            for (long x = 0; x + patch <= slide.Width; x += patch)
                if (TruthFraction(truthMask, x, y, patch) == 1.0) Assert.True(kept.Contains((x, y)),
                    $"{spec.SlideId} ({spec.Label}): all-tissue patch ({x},{y}) missed");
    }

    [Fact]
    public void CoordinatesRoundTripThroughHdf5WithAttributes()
    {
        using var slide = WholeSlide.Open(fixture.SlidePath);
        var (coords, _) = Tiler.Tile(slide, new TilingOptions { PatchSize = 224, TargetMpp = 1.0 });
        string path = fixture.Dir["roundtrip.h5"];
        coords.Write(path);
        var back = PatchCoordinates.Read(path);
        Assert.Equal(coords.Count, back.Count);
        Assert.Equal(coords.Coords, back.Coords);
        Assert.Equal(224, back.PatchSize);
        Assert.Equal(1, back.PatchLevel); // 1.0 mpp = level 1 of a 0.5 mpp slide
        Assert.Equal(448, back.PatchSizeLevel0);
        Assert.Equal(1.0, back.TargetMpp);
        Assert.Equal(2.0, back.Downsample);
        Assert.Empty(Directory.GetFiles(fixture.Dir.Path, ".*.tmp"));
    }

    [Fact]
    public void MagnificationWithoutObjectivePowerUsesTheMppConvention()
    {
        using var slide = WholeSlide.Open(fixture.SlidePath);
        var (_, target, ds) = Tiler.ResolveResolution(slide, new TilingOptions { Magnification = 10 }, null);
        Assert.Equal(1.0, target);
        Assert.Equal(2.0, ds);
    }

    [Fact]
    public void BatchResumesSkipsDoneSlidesAndShardsArePartitions()
    {
        using var outDir = new TempDir();
        var options = new TilingJobOptions { Slides = [fixture.SlidePath], OutputDir = outDir.Path,
            Tiling = new TilingOptions { TargetMpp = 0.5 } };
        var first = TilingJob.Run(options);
        Assert.Equal(SlideStatus.Done, first.Single().Status);
        Assert.True(File.Exists(outDir[$"previews/{fixture.Spec.SlideId}.png"]));
        var second = TilingJob.Run(options);
        Assert.Equal(SlideStatus.Skipped, second.Single().Status);
        Assert.Equal(first.Single().Patches, second.Single().Patches);
        // Different settings on the same output: refused rather than silently mixed.
        var changed = Assert.Throws<HistoException>(() =>
            TilingJob.Run(options with { Tiling = new TilingOptions { TargetMpp = 1.0 } })).Message;
        Assert.Contains("TargetMpp 0.5 -> 1", changed);
        Assert.Contains("--overwrite", changed);
        // Issue 10, item 6: any --magnification used to count as the same setting as any other.
        using var byMagnification = new TempDir();
        TilingJob.Run(options with { OutputDir = byMagnification.Path, Tiling = new TilingOptions { Magnification = 10 } });
        var other = Assert.Throws<HistoException>(() =>
            TilingJob.Run(options with { OutputDir = byMagnification.Path, Tiling = new TilingOptions { Magnification = 5 } })).Message;
        Assert.Contains("Magnification 10 -> 5", other);

        var ids = Enumerable.Range(0, 200).Select(i => $"slide-{i}").ToList();
        var shards = Enumerable.Range(0, 4).Select(i => ids.Where(id => SlideBatch.InShard(id, (i, 4))).ToList()).ToList();
        Assert.Equal(200, shards.Sum(s => s.Count));
        Assert.Equal(200, shards.SelectMany(s => s).Distinct().Count());
        Assert.All(shards, s => Assert.InRange(s.Count, 30, 70));
    }

    [Fact]
    public void BadSlideIsReportedAndTheBatchGoesOnWithSkipErrors()
    {
        using var outDir = new TempDir();
        File.WriteAllText(outDir["broken.tif"], "not a tiff");
        var options = new TilingJobOptions { Slides = [outDir["broken.tif"], "/missing/gone.svs", fixture.SlidePath],
            OutputDir = outDir["out"], Tiling = new TilingOptions { TargetMpp = 0.5 }, SkipErrors = true };
        var outcomes = TilingJob.Run(options);
        Assert.Equal([SlideStatus.Failed, SlideStatus.Failed, SlideStatus.Done], outcomes.Select(o => o.Status));
        Assert.Contains("broken.tif", outcomes[0].Error);
        Assert.Contains("gone.svs", outcomes[1].Error);
        Assert.False(File.Exists(outDir["out/coords/broken.h5"]));
        Assert.Contains("broken,failed", File.ReadAllText(outDir["out/process_list.csv"]));
        // Without --skip-errors no slide starts after a failure (one already running in parallel finishes).
        Assert.Single(TilingJob.Run(options with { SkipErrors = false, ParallelSlides = 1, OutputDir = outDir["out2"] }));
        var stopped = TilingJob.Run(options with { SkipErrors = false, OutputDir = outDir["out3"] });
        Assert.Equal(SlideStatus.Failed, stopped[0].Status);
        Assert.True(stopped.Count <= 2);
    }

    [Fact]
    public void CliTileExitsNonZeroAndNamesTheFailingSlide()
    {
        using var outDir = new TempDir();
        var (code, _, stderr) = Cli.Run("tile", "/missing/gone.svs", "-o", outDir.Path, "--mpp", "0.5");
        Assert.Equal(1, code);
        Assert.Contains("gone.svs", stderr);
        var (code2, _, stderr2) = Cli.Run("tile", fixture.SlidePath, "-o", outDir.Path);
        Assert.Equal(2, code2);
        Assert.Contains("--mpp", stderr2);
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_SlideWithoutMppNeedsAnOverride()
    {
        using var outDir = new TempDir();
        string slide = SharedData.Path_("slides", "tcga-cr-7395-01a-01-ts1.svs");
        var failed = TilingJob.Run(new TilingJobOptions { Slides = [slide], OutputDir = outDir.Path,
            Tiling = new TilingOptions { TargetMpp = 0.5 } });
        Assert.Contains("--mpp-csv", failed.Single().Error);
        File.WriteAllText(outDir["mpp.csv"], "slide_id,mpp\ntcga-cr-7395-01a-01-ts1,0.25\n");
        var done = TilingJob.Run(new TilingJobOptions { Slides = [slide], OutputDir = outDir.Path, MppCsv = outDir["mpp.csv"],
            Tiling = new TilingOptions { TargetMpp = 0.5 } });
        Assert.Equal(SlideStatus.Done, done.Single().Status);
        var coords = PatchCoordinates.Read(outDir["coords/tcga-cr-7395-01a-01-ts1.h5"]);
        Assert.Equal(1, coords.PatchLevel); // 0.5 mpp on a 0.25 mpp scan reads level 1 (downsample 2.001)
        Assert.Equal(512, coords.PatchSizeLevel0);
        Assert.True(coords.Count > 20);
    }

    [Fact]
    public void GeoJsonRingsAreClosedAndCoverTheMask()
    {
        using var slide = WholeSlide.Open(fixture.SlidePath);
        var mask = TissueDetector.Detect(slide);
        using var dir = new TempDir();
        var outputs = TissueOutputs.Write(mask, "s", dir.Path);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(outputs.GeoJsonPath));
        Assert.Equal("FeatureCollection", doc.RootElement.GetProperty("type").GetString());
        double area = 0;
        foreach (var f in doc.RootElement.GetProperty("features").EnumerateArray())
        {
            Assert.Equal("Tissue", f.GetProperty("properties").GetProperty("classification").GetProperty("name").GetString());
            var rings = f.GetProperty("geometry").GetProperty("coordinates");
            for (int r = 0; r < rings.GetArrayLength(); r++)
            {
                var pts = rings[r].EnumerateArray().Select(p => (p[0].GetDouble(), p[1].GetDouble())).ToArray();
                Assert.Equal(pts[0], pts[^1]);
                area += (r == 0 ? 1 : -1) * Math.Abs(Imaging.MaskContours.SignedArea(pts[..^1]));
            }
        }
        double maskArea = mask.Mask.Count(v => v != 0) * mask.ScaleX * mask.ScaleY;
        Assert.Equal(maskArea, area, maskArea * 1e-6);
    }

    [Fact]
    public void SavePatchesWritesOnePngPerCoordinateAtThePatchSize()
    {
        using var outDir = new TempDir();
        var options = new TilingJobOptions
        {
            Slides = [fixture.SlidePath], OutputDir = outDir.Path,
            Tiling = new TilingOptions { TargetMpp = 1.0, PatchSize = 96, SavePatches = true },
        };
        var outcome = TilingJob.Run(options).Single();
        var files = Directory.GetFiles(outDir[$"patches/{fixture.Spec.SlideId}"], "*.png");
        Assert.Equal(outcome.Patches, files.Length);
        var patch = RgbaImage.Load(files[0]);
        Assert.Equal((96, 96), (patch.Width, patch.Height));
        Assert.Empty(Directory.GetDirectories(outDir["patches"], ".*"));
    }
}
