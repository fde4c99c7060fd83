using System.Text.Json;
using Histo.Slides;

namespace Histo.Tests;

public class SlideReadingTests
{
    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_AperioSvsReportsSizeMppAndObjective()
    {
        using var slide = WholeSlide.Open(SharedData.Path_("slides", "cmu-1-small-region.svs"));
        Assert.Equal("aperio", slide.Vendor);
        Assert.Single(slide.Levels);
        Assert.Equal(2220, slide.Width);
        Assert.Equal(2967, slide.Height);
        Assert.Equal(0.499, slide.Mpp!.Value.X, 3);
        Assert.Equal(0.499, slide.Mpp!.Value.Y, 3);
        Assert.Equal(20, slide.ObjectivePower);
        Assert.Contains(slide.AssociatedImages, a => a.Name == "thumbnail");
        var region = slide.ReadRegion(1000, 1000, 0, 64, 48);
        Assert.Equal(64 * 48 * 4, region.Pixels.Length);
        Assert.Contains(region.Pixels, b => b < 200); // tissue, not blank
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_Jpeg2000SvsReportsTwoLevelsAndNoMpp()
    {
        using var slide = WholeSlide.Open(SharedData.Path_("slides", "tcga-cr-7395-01a-01-ts1.svs"));
        Assert.Equal(2, slide.Levels.Count);
        Assert.Equal((4443L, 3567L), (slide.Levels[0].Width, slide.Levels[0].Height));
        Assert.Equal((2221L, 1783L), (slide.Levels[1].Width, slide.Levels[1].Height));
        Assert.Equal(2.0, slide.Levels[1].Downsample, 2);
        Assert.Null(slide.Mpp);
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_InfoJsonListsLevelsAndMpp()
    {
        var (code, stdout, _) = Cli.Run("info", "--json", SharedData.Path_("slides", "cmu-1-small-region.svs"));
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        var s = doc.RootElement[0];
        Assert.Equal("aperio", s.GetProperty("vendor").GetString());
        Assert.Equal(0.499, s.GetProperty("mpp_x").GetDouble(), 3);
        Assert.Equal(2967, s.GetProperty("levels")[0].GetProperty("height").GetInt64());
    }

    [Fact]
    public void MissingFileNamesTheFile()
    {
        var e = Assert.Throws<HistoException>(() => WholeSlide.Open("/nonexistent/slide.svs"));
        Assert.Contains("/nonexistent/slide.svs", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void UnsupportedFormatSaysWhatToDo()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["scan.dcm"], "DICM not really a slide");
        var e = Assert.Throws<HistoException>(() => WholeSlide.Open(dir["scan.dcm"]));
        Assert.Contains("scan.dcm", e.Message);
        Assert.Contains("OpenSlide 4", e.Message);
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_TruncatedSlideGivesOneClearError()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(SharedData.Path_("slides", "cmu-1-small-region.svs"));
        File.WriteAllBytes(dir["truncated.svs"], bytes[..(bytes.Length / 3)]);
        var (code, _, stderr) = Cli.Run("info", dir["truncated.svs"]);
        Assert.NotEqual(0, code);
        Assert.Contains("truncated.svs", stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }
}
