using System.Diagnostics;
using Histo.Imaging;
using Histo.Slides;

namespace Histo.Bench;

/// <summary>Where tiling spends its time, stage by stage (Release build, warm).</summary>
static class ProfileTiling
{
    public static int Run(string slidePath)
    {
        for (int round = 0; round < 3; round++)
        {
            var sw = Stopwatch.StartNew();
            using var slide = WholeSlide.Open(slidePath);
            var t0 = sw.Elapsed.TotalMilliseconds;
            var thumb = SlideThumbnail.Read(slide, 2048);
            var t1 = sw.Elapsed.TotalMilliseconds;
            int w = thumb.Width, h = thumb.Height;
            var s = new byte[w * h];
            for (int i = 0; i < s.Length; i++) s[i] = thumb.Pixels[4 * i];
            var t2 = sw.Elapsed.TotalMilliseconds;
            BinaryMorphology.MedianBlur(s, w, h, 7);
            var t3 = sw.Elapsed.TotalMilliseconds;
            BinaryMorphology.Close(s, w, h, 5);
            var t4 = sw.Elapsed.TotalMilliseconds;
            BinaryMorphology.Dilate(s, w, h, 63);
            var t5 = sw.Elapsed.TotalMilliseconds;
            BinaryMorphology.FillHoles(s, w, h);
            var t6 = sw.Elapsed.TotalMilliseconds;
            BinaryMorphology.RemoveSmallComponents(s, w, h, 100);
            var t7 = sw.Elapsed.TotalMilliseconds;
            var mask = TissueDetector.Detect(thumb, slide.Width, slide.Height);
            var t8 = sw.Elapsed.TotalMilliseconds;
            Tiler.Tile(slide, new TilingOptions { TargetMpp = 0.5 });
            var t9 = sw.Elapsed.TotalMilliseconds;
            Console.WriteLine($"open {t0:0} thumb {t1 - t0:0} median {t3 - t2:0} close {t4 - t3:0} dilate63 {t5 - t4:0} fill {t6 - t5:0} cc {t7 - t6:0} | detect {t8 - t7:0} | tile {t9 - t8:0} ms ({w}x{h})");
        }
        return 0;
    }
}
